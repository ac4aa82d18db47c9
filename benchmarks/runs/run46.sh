#!/bin/bash
# Device run 46: the 16-row table again with the code of run 44 (kernels unchanged; checks passed
# there), the harness now warmed up before the first row and with a GPU-span column for ours
# (one profiled execution per shape).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --skip-check --label run46 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run46_kernel_log.txt | grep -E "warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
