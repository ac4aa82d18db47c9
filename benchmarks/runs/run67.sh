#!/bin/bash
# Device run 67: importance partials and tile maxima stored tile-major
# ([tiles, batch, kv_heads, group, block_k] / [tiles, batch, kv_heads, group]) instead of
# head-major ([batch, kv_heads, group, slots]).  Run 66 found ~45 us of the split kernel in the
# DRAM writes of the partials (the same stores kept in L2: -4.2%); tile-major makes the
# concurrent programs' writes one sequential front instead of 4 x 1024 scattered streams.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python -c "
import numpy as np, benchmarks.kernel as kb
kb.OVERRIDES.update(tile_major=True)
print('checks tile_major', 'PASS' if kb.correctness(np.random.default_rng(67), quick=True) else 'FAIL')
" 2>&1 | grep -v -i warn | tee $OUT/run67_checks_log.txt
timeout 400 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,8x32768 \
  --variant 'default={}' --variant 'tile-major={"tile_major": true}' \
  --variant 'default again={}' --variant 'tile-major again={"tile_major": true}' \
  2>&1 | grep -v -i warn | tee $OUT/run67_times_log.txt
