#!/bin/bash
# Device run 77 (prepared in the eleventh session, which had no device time left): the split
# kernel's ||v||_1 as a tensor-core dot (KernelConfig.v_l1_dot, bf16 "pvt" only).  Offline
# compile (Triton 3.9, sm_90a) at 128 x 8192: 470 instead of 691 SASS instructions in the tile
# loop (the fp32 sum over head_dim was 196 FADD + conversions + 54 SHFL), 104 instead of 128
# registers; identical results in interpret mode.  Quick device checks with it, then the A/B.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python -c "
import numpy as np, benchmarks.kernel as kb
kb.OVERRIDES.update(v_l1_dot=True)
print('checks v_l1_dot', 'PASS' if kb.correctness(np.random.default_rng(77), quick=True) else 'FAIL')
" 2>&1 | grep -v -i warn | tee $OUT/run77_checks_log.txt
timeout 300 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,1x1024 \
  --variant 'default={}' --variant 'v_l1 dot={"v_l1_dot": true}' \
  --variant 'default again={}' --variant 'v_l1 dot again={"v_l1_dot": true}' \
  2>&1 | grep -v -i warn | tee $OUT/run77_times_log.txt
