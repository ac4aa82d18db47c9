#!/bin/bash
# Device run 17: wave-filling split counts (new default) against the old heuristic, interleaved.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/ab.py --shapes 8x1024,8x2048,8x8192,8x32768,32x1024,32x2048,32x8192,32x32768,1x32768 \
  --variants bf16_partials,old_splits,bf16_st3,old_splits_st3,bf16_bk128_w8 2>&1 | tee $OUT/ab17.txt
