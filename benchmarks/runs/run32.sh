#!/bin/bash
# Device run 32 (INVALID, see NOTES.md: the input reuse let XLA merge applications): the 16-row table with a harness (outputs stacked per leaf, inputs reused
# over 4 passes when a pass reads >= 2x the L2), same kernel code as runs 18 and 31 (checks: run 31).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 330 python benchmarks/kernel.py --skip-check --label run32 --out $OUT 2>&1 | tee $OUT/kernel32.txt
timeout 90 python benchmarks/launch_gaps.py --out $OUT --shapes 1x1024 --ops "ours,xla ref" 2>&1 \
  | grep -v Warning | grep -E "^b=|GPU:" | tee $OUT/gaps32.txt
