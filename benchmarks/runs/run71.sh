#!/bin/bash
# Device run 71 (first of the eleventh session): end to end with the tile-major partials of
# commit 6b87162: e2e_decode.py's token and eviction agreement (greedy fp32, SmolLM2 shapes,
# random weights, 256 tokens at budget 64, kernel vs XLA) and the decode-step times.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
E2E_SKIP_RESTACK=1 timeout 400 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run71_e2e_decode_log.txt
