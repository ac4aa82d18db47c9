#!/bin/bash
# Device run 74: the full table at the shipped code (row-loop combine where it measured faster,
# run 72-73) with repetitions of 0.2 s of work (run 73), quick device checks first.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 580 python benchmarks/kernel.py --quick-check --label run74 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run74_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
