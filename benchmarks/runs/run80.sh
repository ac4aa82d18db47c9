#!/bin/bash
# Device run 80: the row-loop combine stays at 64 us with every row-stats variant (run 79), so the
# code is not the cause.  Clocks and throttle reasons of this lease, then the combine's methods
# side by side (v_l1_dot on in all): rule (row loop), axis sum, row loop with 528 programs (run 75:
# 25.4 us), rule again.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi -q -d CLOCK,PERFORMANCE,POWER 2>&1 | grep -v "^$" | head -60 | tee $OUT/run80_smi.txt
timeout 200 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192 \
  --variant 'rule={"v_l1_dot": true}' --variant 'axis={"v_l1_dot": true, "combine_row_loop": false}' \
  --variant 'rows p528={"v_l1_dot": true, "combine_programs": 528}' --variant 'rule again={"v_l1_dot": true}' \
  2>&1 | grep -v -i warn | grep "^b=" | tee $OUT/run80_times_log.txt
