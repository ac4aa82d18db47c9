#!/bin/bash
# Device run 71 (last ~3 device minutes of the session): end to end with tile-major partials:
# e2e_decode.py's token and eviction agreement only (greedy fp32, SmolLM2 shapes, random weights,
# 256 tokens at budget 64, kernel vs XLA); no step timing (no device time left for it).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
E2E_SKIP_TIMING=1 timeout 125 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run71_e2e_decode_log.txt
