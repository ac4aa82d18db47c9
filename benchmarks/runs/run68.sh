#!/bin/bash
# Device run 68: partial layouts side by side.  Run 67: tile-major partials took the split
# kernel from 1053.5 to 1024.4 us at 128 x 8192 but the combine from 26 to 32 us (its row sum
# now crosses lanes: rows are the middle axis of its [tiles, rows, block_k] loads).
# "batch_inner" ([kv_heads, group, tiles, batch, block_k]) keeps the combine's loads and code
# of the head-major layout ([rows, tiles, block_k] per batch row) while all programs at one tile
# write one contiguous [batch, block_k] region per query head (32 write fronts, not 4 x 1024).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 150 python -c "
import numpy as np, benchmarks.kernel as kb
kb.OVERRIDES.update(partial_layout='batch_inner')
print('checks batch_inner', 'PASS' if kb.correctness(np.random.default_rng(68), quick=True) else 'FAIL')
" 2>&1 | grep -v -i warn | tee $OUT/run68_checks_log.txt
timeout 420 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192,8x2048,8x32768 \
  --variant 'head={}' --variant 'tile={"partial_layout": "tile"}' \
  --variant 'batch_inner={"partial_layout": "batch_inner"}' \
  --variant 'head again={}' --variant 'tile again={"partial_layout": "tile"}' \
  --variant 'batch_inner again={"partial_layout": "batch_inner"}' \
  2>&1 | grep -v -i warn | tee $OUT/run68_times_log.txt
