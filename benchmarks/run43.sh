#!/bin/bash
# Prepared for the next session (NOT run yet): the table with the shipped code, then the GPU time
# of the combine at other program targets.
# With the run-41 combine (4 warps, 3 programs per SM = 396 resident) the default target 528 gives
# 5 chunks x 128 rows = 640 programs at 128 x 8192 (1.6 rounds); 384 gives 3 chunks = 384
# programs (one round, longer programs); 792 gives 7 chunks (2 rounds). At 8 x 2048 the row is
# one chunk (8 programs) unless the single-chunk rule changes; compare its time with these.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
# First the 16-row table with the shipped code (the run-39 table predates run 41's combine).
timeout 330 python benchmarks/kernel.py --quick-check --label run43 --out $OUT 2>&1 | grep -v -i warn \
  | tee $OUT/run43_kernel_log.txt | grep -E "correctness|^\| 128 \| 8192|table done"
for target in 528 384 792 264 528; do
  echo "== combine_programs=$target"
  timeout 100 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192,32x8192 --ops ours \
    --config combine_programs=$target 2>&1 | grep -E "^b=.*host-timed|kernels:"
done
