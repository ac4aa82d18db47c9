#!/bin/bash
# Device run 59: does the XLA path's own GEMM choice move e2e_decode's row-0 split (token 152 in
# runs 18/40/58, none in 45/56)?  Greedy tokens of both impls with XLA's default autotuning and
# with autotuning off, one process each, then every pair compared.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
for impl in xla triton; do
  python benchmarks/token_drift.py $impl $OUT/${impl}_default.json 2>&1 | grep -v -i warn
  XLA_FLAGS=--xla_gpu_autotune_level=0 python benchmarks/token_drift.py $impl $OUT/${impl}_noautotune.json 2>&1 | grep -v -i warn
done
python - <<'PY' 2>&1 | tee $OUT/run59_log.txt
import itertools, json, os
runs = {n: json.load(open(f"{os.environ['OUT']}/{n}.json"))["tokens"]
        for n in ("xla_default", "xla_noautotune", "triton_default", "triton_noautotune")}
for a, b in itertools.combinations(runs, 2):
    firsts = [next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), None)
              for ra, rb in zip(runs[a], runs[b])]
    print(f"{a} vs {b}: first differing token per row {firsts}")
PY
