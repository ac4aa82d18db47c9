#!/bin/bash
# Device run 72: the combine's importance row sum as a loop over the real query-head rows
# (one [tiles, block_k] load per row, elementwise sum: no cross-lane reduction; offline compile
# at 128 x 8192: 0 layout conversions and 6 barriers vs 11 and 29, 96 vs 128 registers),
# against the default and a longer default step; then where the host-timed number's ~2.5% over
# the GPU span goes: 4 executions traced back to back as the timed loop enqueues them.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python -c "
import numpy as np, benchmarks.kernel as kb
kb.OVERRIDES.update(combine_row_loop=True, combine_step_elems=32768)
print('checks row loop', 'PASS' if kb.correctness(np.random.default_rng(72), quick=True) else 'FAIL')
" 2>&1 | grep -v -i warn | tee $OUT/run72_checks_log.txt
timeout 330 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,8x32768 \
  --variant 'default={}' --variant 'rows 16k={"combine_row_loop": true, "combine_step_elems": 16384}' \
  --variant 'rows 32k={"combine_row_loop": true, "combine_step_elems": 32768}' \
  --variant 'step 16k w8={"combine_step_elems": 16384, "combine_warps": 8}' \
  --variant 'default again={}' --variant 'rows 32k again={"combine_row_loop": true, "combine_step_elems": 32768}' \
  2>&1 | grep -v -i warn | tee $OUT/run72_times_log.txt
timeout 90 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192 --ops ours --executions 4 \
  2>&1 | grep -v -i warn | tee $OUT/run72_gaps_log.txt
