#!/bin/bash
# Device run 83: the table with the combine's new program target (528 = 4 per SM, run 82), then
# where the kernel and XLA part in run 82's one differing eviction decision (step 137, peaked
# weights): the two slots' XLA importances and their gap.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 430 python benchmarks/kernel.py --quick-check --label run83 --out $OUT 2>&1 | grep -v -i warn \
  | tee $OUT/run83_kernel_log.txt | grep -E "correctness|warm-up|^\| 1 \| 1024|^\| 128 \| 8192|^\| 8 \| 2048|table done"
timeout 140 python benchmarks/eviction_margin.py 2>&1 | grep -v -i warn | tee $OUT/run83_margin_log.txt | tail -15
