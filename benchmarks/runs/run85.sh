#!/bin/bash
# Device run 85: run 84's ncu shows the combine latency-bound at 25% occupancy (128 registers, 4
# programs per SM; eligible warps 0.62 per scheduler, DRAM 48%).  Smaller steps (4096 partials)
# should need fewer registers and allow more resident programs: A/B at two program targets.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 300 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192 \
  --variant 'default={}' --variant 's4096 p528={"combine_step_elems": 4096}' \
  --variant 's4096 p792={"combine_step_elems": 4096, "combine_programs": 792}' \
  --variant 's4096 p1056={"combine_step_elems": 4096, "combine_programs": 1056}' \
  --variant 'default again={}' \
  2>&1 | grep -v -i warn | grep "^b=" | tee $OUT/run85_times_log.txt
