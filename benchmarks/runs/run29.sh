#!/bin/bash
# Device run 29: slot-major importance partials ("pvt_t") against the default body, kernel alone.
# The pvt_t body was removed after this run (slower, benchmarks/NOTES.md).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/ab.py --shapes 128x8192,32x8192,8x2048 --variants \
  pvt_kernel,pvt_t_kernel,pvt_attn_only_kernel 2>&1 | tee $OUT/ab.txt
