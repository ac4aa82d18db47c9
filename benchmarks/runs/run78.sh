#!/bin/bash
# Device run 78 (prepared; run it only if run 77 shows v_l1_dot faster): the full table with
# ||v||_1 on the tensor cores, quick device checks first.  If it is recorded, make v_l1_dot the
# bf16 "pvt" default in plan_config (the table then matches the shipped launch).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 580 python benchmarks/kernel.py --quick-check --overrides '{"v_l1_dot": true}' --label run78 \
  --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run78_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
