#!/bin/bash
# Device run 26: deferred importance-partial stores ("pvt_defer") against the default body,
# kernel alone and full call (with combine), interleaved; torch SDPA in the same run.
# The pvt_defer body was removed after this run (+8% at 128 x 8192, benchmarks/NOTES.md).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/ab.py --shapes 128x8192,32x8192,8x2048,8x32768 --sdpa \
  --variants pvt,pvt_defer 2>&1 | tee $OUT/ab_full.txt
python benchmarks/ab.py --shapes 128x8192,32x8192 \
  --variants pvt_kernel,pvt_defer_kernel,pvt_attn_only_kernel 2>&1 | tee $OUT/ab_kernel.txt
