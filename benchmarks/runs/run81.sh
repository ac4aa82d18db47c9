#!/bin/bash
# Device run 81: the table with the launch run 80 measured fastest on this lease: ||v||_1 on the
# tensor cores (run 77) and the combine's axis sum everywhere (run 80: 32.2 vs 65.7 us row loop at
# 128 x 8192, 14.0 vs 26.0 at 32 x 8192).  These become plan_config's defaults.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 580 python benchmarks/kernel.py --quick-check --overrides '{"v_l1_dot": true, "combine_row_loop": false}' \
  --label run81 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run81_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
