#!/bin/bash
# Device run 40: end to end with the shipped code (the split kernel writes the output at one
# split). Call 1 (carry .carry/p1): cp .carry/p1 /tmp/p1; call 2 (carry .carry/p2, .carry/gguf):
# bash benchmarks/runs/run40.sh -> the real SmolLM2 run of run 35, then e2e_decode.py's step times.
set -o pipefail
export PYTHONUNBUFFERED=1
bash benchmarks/runs/run35.sh
mv $OUT/e2e_real_log.txt $OUT/run40_e2e_real_log.txt; mv $OUT/tokens.json $OUT/run40_e2e_real_tokens.json
PYTHONPATH=. E2E_SKIP_RESTACK=1 timeout 300 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run40_e2e_decode_log.txt
