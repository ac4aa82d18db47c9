#!/bin/bash
# Device run 48: the table of run 46 with a GPU-span column for the XLA reference too, quick device checks first.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/kernel.py --quick-check --label run48 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run48_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
