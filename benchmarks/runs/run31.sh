#!/bin/bash
# Device run 31: the 16-row table again with the harness fix of run 30 (each output stacked over
# the input sets: one output buffer per leaf per executable), same kernel code as run 18, then
# the small-shape host-vs-GPU breakdown with the fixed harness.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 330 python benchmarks/kernel.py --quick-check --label run31 --out $OUT 2>&1 | tee $OUT/kernel31.txt
timeout 120 python benchmarks/launch_gaps.py --out $OUT --ops "ours,xla ref" 2>&1 | grep -v Warning \
  | grep -E "^b=|GPU:|kernels:" | tee $OUT/gaps31.txt
