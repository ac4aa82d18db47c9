#!/bin/bash
# Device run 75: the row-loop combine's round size.  It compiles to 96 registers (128 threads),
# so 5 programs fit per SM (660 resident) where the axis sum's 128 fitted 4 and the plan
# assumes 3 (396); more chunks per row = shorter chunks if the round model holds.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 200 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x32768 \
  --variant 'rule={}' --variant 'p528={"combine_programs": 528}' \
  --variant 'p660={"combine_programs": 660}' --variant 'rule again={}' \
  2>&1 | grep -v -i warn | tee $OUT/run75_times_log.txt
