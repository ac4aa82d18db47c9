#!/bin/bash
# Device run 61: the full table at the shipped commit of the eighth session (kernels as in run 48
# but for the combine's NaN rule, timed unchanged in run 57), quick device checks first.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --quick-check --label run61 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run61_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
