#!/bin/bash
# Device run 28: does a higher residency (32-slot tiles, no |v|_1 register sum = a body that would
# read |v|_1 from a per-slot array kept with the KV buffer) beat the default body? Kernel alone.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/ab.py --shapes 128x8192,32x8192 --variants \
  pvt_kernel,pvt_no_vl1_kernel,pvt_no_vl1_bk32_kernel,pvt_attn_only_bk32_kernel,pvt_bk32_kernel,pvt_attn_only_kernel \
  2>&1 | tee $OUT/ab.txt
