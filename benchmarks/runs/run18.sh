#!/bin/bash
# Device run 18: final code (bf16 importance partials, wave-filling split counts):
# checks, the full 16-row table, then the end-to-end SmolLM2-shaped decode.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 200 python benchmarks/kernel.py --quick-check --label run18 --out $OUT 2>&1 | tee $OUT/kernel18.txt
E2E_SKIP_RESTACK=1 timeout 330 python benchmarks/e2e_decode.py 2>&1 | tee $OUT/e2e18.txt
