#!/bin/bash
# Device run 94: the row-loop option (off by default) under the new 2-warp combine default: as shipped
# (2 warps, 16384-element steps), 2 warps x 8192 (the per-thread loads of run 72's 4 x 16384) and 4 warps
# x 16384 (its launch before runs 88-89); the default (axis sum) first and last.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 300 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192 \
  --variant 'default={}' --variant 'rowloop w2 s16384={"combine_row_loop": true}' \
  --variant 'rowloop w2 s8192={"combine_row_loop": true, "combine_step_elems": 8192}' \
  --variant 'rowloop w4 s16384 p528={"combine_row_loop": true, "combine_warps": 4, "combine_programs": 528}' \
  --variant 'default again={}' \
  2>&1 | grep -v -i warn | grep -E "^b=|^jax|Error" | tee $OUT/run94_times_log.txt
