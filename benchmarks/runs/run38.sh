#!/bin/bash
# Device run 38: the combine after its change (one split -> the split kernel writes the output;
# program target as a knob). Full device checks, interleaved A/B of full calls, GPU profile.
# (The "merge_in_combine" variant used a KernelConfig switch removed after this run; see ab.py.)
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 200 python benchmarks/kernel.py --skip-table 2>&1 | grep -v -i warn | tail -60 > $OUT/run38_checks_log.txt
grep -c PASS $OUT/run38_checks_log.txt; grep -E "FAIL|Error|correctness" $OUT/run38_checks_log.txt | head
timeout 240 python benchmarks/ab.py --sdpa --shapes 128x8192,32x8192,8x2048,1x8192 \
  --variants pvt,merge_in_combine,combine_264,combine_1056,combine_2112 2>&1 | grep -v -i warn \
  | tee $OUT/run38_ab_log.txt | grep -E " us |same eviction"
timeout 100 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192,8x2048 --ops ours 2>&1 \
  | grep -E "^b=|GPU:|kernels:" | tee $OUT/run38_gaps.txt
