#!/bin/bash
# Device run 89: run 88 found 2 warps x 2048-partial steps at 1056 programs 18-28% faster in the
# combine (128 x 8192 28.9 -> 23.8 us).  Walk further along that line, run 88's best first and last.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,1x1024 \
  --variant 'w2 s2048 p1056={"combine_step_elems": 2048, "combine_programs": 1056, "combine_warps": 2}' \
  --variant 'w2 s2048 p1584={"combine_step_elems": 2048, "combine_programs": 1584, "combine_warps": 2}' \
  --variant 'w2 s1024 p1056={"combine_step_elems": 1024, "combine_programs": 1056, "combine_warps": 2}' \
  --variant 'w1 s1024 p2112={"combine_step_elems": 1024, "combine_programs": 2112, "combine_warps": 1}' \
  --variant 'w1 s2048 p2112={"combine_step_elems": 2048, "combine_programs": 2112, "combine_warps": 1}' \
  --variant 'w2 s4096 p1056={"combine_step_elems": 4096, "combine_programs": 1056, "combine_warps": 2}' \
  --variant 'w2 s2048 p1056 again={"combine_step_elems": 2048, "combine_programs": 1056, "combine_warps": 2}' \
  --variant 'default={}' \
  2>&1 | grep -v -i warn | grep -E "^b=|^jax|Error" | tee $OUT/run89_times_log.txt
