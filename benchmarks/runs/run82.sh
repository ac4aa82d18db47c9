#!/bin/bash
# Device run 82: the axis-sum combine's program target (396 = 3 per SM, the default; 528 = 4 per SM,
# what its <= 128 registers allow; 660) side by side at four shapes, default first and last; then
# e2e_decode.py with the shipped code (token and eviction agreement, decode-step times).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 300 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x32768,8x2048 \
  --variant 'default={}' --variant 'p528={"combine_programs": 528}' \
  --variant 'p660={"combine_programs": 660}' --variant 'default again={}' \
  2>&1 | grep -v -i warn | grep "^b=" | tee $OUT/run82_times_log.txt
E2E_SKIP_RESTACK=1 timeout 270 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run82_e2e_decode_log.txt
