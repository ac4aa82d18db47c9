#!/bin/bash
# Prepared for the next session (NOT run yet): GPU time of the combine at other program targets.
# With the run-41 combine (4 warps, 3 programs per SM = 396 resident) the default target 528 gives
# 5 chunks x 128 rows = 640 programs at 128 x 8192 (1.6 rounds); 384 gives 3 chunks = 384
# programs (one round, longer programs); 792 gives 7 chunks (2 rounds). At 8 x 2048 the row is
# one chunk (8 programs) unless the single-chunk rule changes; compare its time with these.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
for target in 528 384 792 264 528; do
  echo "== combine_programs=$target"
  timeout 100 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192,32x8192 --ops ours \
    --config combine_programs=$target 2>&1 | grep -E "^b=.*host-timed|kernels:"
done
