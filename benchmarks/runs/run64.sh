#!/bin/bash
# Device run 64 (ninth session): the full table at the final commit of the ninth session (the
# combine's +inf rule of run 62 is the only kernel change since run 61), quick device checks first.
# Prediction: run 61's numbers within the ~2% lease spread; headline still short.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 570 python benchmarks/kernel.py --quick-check --label run64 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run64_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
