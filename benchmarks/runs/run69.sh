#!/bin/bash
# Device run 69: "super" layout: partials [tiles / S, batch, kv_heads, group, S, block_k]
# (S = 4 tiles): head-major inside a super-tile of S tiles (so the combine loads
# [rows, S, block_k] steps exactly as with the head-major layout, no cross-lane row sum),
# tile-major across super-tiles (so the split kernel's writes advance as one front, as with
# "tile" in runs 67-68).  A/B against "head" and "tile".
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python -c "
import numpy as np, benchmarks.kernel as kb
kb.OVERRIDES.update(partial_layout='super')
print('checks super', 'PASS' if kb.correctness(np.random.default_rng(68), quick=True) else 'FAIL')
" 2>&1 | grep -v -i warn | tee $OUT/run69_checks_log.txt
timeout 420 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,8x32768 \
  --variant 'head={}' --variant 'tile={"partial_layout": "tile"}' \
  --variant 'super={"partial_layout": "super"}' \
  --variant 'head again={}' --variant 'tile again={"partial_layout": "tile"}' \
  --variant 'super again={"partial_layout": "super"}' \
  2>&1 | grep -v -i warn | tee $OUT/run69_times_log.txt
