#!/bin/bash
# Device run 88: one more step of runs 85-86's direction for the latency-bound combine: 2048-partial
# importance steps (fewer registers per thread, maybe a 5th/6th program per SM) at 528 and 792 programs,
# and 2 warps x 2048 (the same partials per thread as the default's 4 warps x 4096, half the threads per
# program) at 1056 programs; default first and last.  The table (run 89) follows in the next call.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,128x32768 \
  --variant 'default={}' --variant 's2048 p528={"combine_step_elems": 2048}' \
  --variant 's2048 p792={"combine_step_elems": 2048, "combine_programs": 792}' \
  --variant 'w2 s2048 p1056={"combine_step_elems": 2048, "combine_programs": 1056, "combine_warps": 2}' \
  --variant 'default again={}' \
  2>&1 | grep -v -i warn | grep -E "^b=|^jax|Error" | tee $OUT/run88_times_log.txt
