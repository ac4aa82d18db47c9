#!/bin/bash
# Device run 45: end to end with the shipped code (after run 44 staged /tmp/p1 in the same lease):
# the real SmolLM2 run of run 35, then e2e_decode.py's step times (as run 40).
set -o pipefail
export PYTHONUNBUFFERED=1
bash benchmarks/runs/run35.sh
mv $OUT/e2e_real_log.txt $OUT/run45_e2e_real_log.txt; mv $OUT/tokens.json $OUT/run45_e2e_real_tokens.json
PYTHONPATH=. E2E_SKIP_RESTACK=1 timeout 300 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run45_e2e_decode_log.txt
