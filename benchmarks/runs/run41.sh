#!/bin/bash
# Device run 41: GPU time (profiler) of combine variants, one lease. The variants were files swapped
# into pallas_kernels/triton_combine.py between measurements (not kept in the repo):
#   v0 = git show 3377872:pallas_kernels/triton_combine.py (before: 8 warps, 16384-element steps,
#        per-step min/argmin reductions, no prefetch)
#   v2 = the shipped file with _NUM_WARPS = 8 (per-lane running minimum, next step's loads
#        issued before the current step's arithmetic, 8192-element steps)
#   v3 = v2 with _TILE_ELEMS = 16384;  v4 = the shipped file (_NUM_WARPS = 4, _TILE_ELEMS = 8192)
export PYTHONPATH=. PYTHONUNBUFFERED=1
for v in v0 v2 v3 v4 v0; do
  cp /tmp/combine_variants/$v.py pallas_kernels/triton_combine.py
  echo "== combine $v"
  timeout 100 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192,8x2048 --ops ours 2>&1 \
    | grep -E "^b=|kernels:"
done
