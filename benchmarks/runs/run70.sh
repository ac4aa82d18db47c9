#!/bin/bash
# Device run 70: the full table with tile-major importance partials (runs 66-69), quick device
# checks first.  Prediction: the split kernel ~2.5-3% faster and the combine ~6 us slower at
# 128 x 8192 (run 69: call 1092 vs 1118 us host-timed in one lease), the small shapes unchanged.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --quick-check --label run70 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run70_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
