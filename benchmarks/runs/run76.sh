#!/bin/bash
# Device run 76 (last ~4 device minutes): the stricter row-loop rule (the row loop's own plan
# must give chunks of >= 2 steps) moves 128 x 1024 back to the axis sum (run 74's table timed it
# with the row loop in one-step chunks); both launches interleaved.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 100 python benchmarks/launch_ab.py --out $OUT --shapes 128x1024 \
  --variant 'rule (axis)={}' --variant 'row loop={"combine_row_loop": true}' \
  --variant 'rule again={}' --variant 'row loop again={"combine_row_loop": true}' \
  2>&1 | grep -v -i warn | tee $OUT/run76_times_log.txt
