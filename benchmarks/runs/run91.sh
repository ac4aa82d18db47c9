#!/bin/bash
# Device run 91: e2e_decode.py with the shipped code (runs 88-90's combine launch): greedy fp32 token
# agreement over 256 tokens at budget 64, eviction agreement, decode-step times against XLA.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
E2E_SKIP_RESTACK=1 timeout 330 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run91_e2e_decode_log.txt
