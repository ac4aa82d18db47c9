#!/bin/bash
# Device run 73: (1) where the host-timed number's excess over the GPU span goes: the same
# executable with repetitions of 0.05 / 0.2 / 0.5 s of work and the two-length slope
# (benchmarks/rep_size.py); (2) the combine's row-sum rule as shipped (row loop where the axis
# plan's chunks take >= 2 steps) against the axis sum forced, 4 shapes, interleaved.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python benchmarks/rep_size.py --out $OUT --shapes 128x8192,8x2048,128x32768 \
  2>&1 | grep -v -i warn | tee $OUT/run73_rep_size_log.txt
timeout 200 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,8x32768 \
  --variant 'rule={}' --variant 'axis={"combine_row_loop": false}' \
  --variant 'rule again={}' --variant 'axis again={"combine_row_loop": false}' \
  2>&1 | grep -v -i warn | tee $OUT/run73_times_log.txt
