#!/bin/bash
# Device run 57: after the combine's NaN rule (a NaN importance ranks first, as jnp.argmin):
# the device checks of kernel.py (every override set), then the shipped call's kernel times at
# three shapes (the combine was 25.7-27.1 / 9.9-10.0 / 3.8-3.9 us in runs 50-55).  Ran at commit
# 4338594 with the same timing inline; now through launch_ab.py.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 300 python benchmarks/kernel.py --skip-table --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run57_checks_log.txt
timeout 200 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048 2>&1 \
  | grep -v -i warn | tee $OUT/run57_times_log.txt
