#!/bin/bash
# Device run 54: launch shapes of the split kernel with more resident warps per SM (run 53 found
# the rows schedule's ragged second wave cheap; the offline compile gives 80 registers at 8 warps
# and 96 at 32-slot tiles).  Ran at commit 2103a4d (run54.py there); the same launches through launch_ab.py.
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192 \
  --variant 'rows (default: 4 warps, 64-slot tiles, 2 stages)={}' \
  --variant '8 warps={"num_warps": 8}' \
  --variant '8 warps, 3 splits={"num_warps": 8, "num_splits": 3}' \
  --variant '32-slot tiles, 3 stages={"block_k": 32, "num_stages": 3}' \
  --variant 'rows (default, again)={}' 2>&1 | grep -v -i warn | tee $OUT/run54_log.txt
