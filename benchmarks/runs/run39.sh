#!/bin/bash
# Device run 39: the 16-row table with the shipped code (split kernel writes the output at one
# split), quick device checks first.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --quick-check --label run39 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run39_kernel_log.txt | grep -E "correctness|^\| 128 \| 8192|table done"
