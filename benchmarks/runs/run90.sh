#!/bin/bash
# Device run 90: the device checks and the full 16-shape table with the shipped launch (the combine's
# 2-warp programs, 2048-partial steps, 1056 resident programs: runs 88-89).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --quick-check --label run90 --out $OUT 2>&1 | grep -v -i warn \
  | tee $OUT/run90_kernel_log.txt | grep -E "correctness|PASS|FAIL|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
