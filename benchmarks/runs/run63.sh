#!/bin/bash
# Device run 63 (ninth session): end to end after the combine's +inf rule and the decoder's new
# early argument checks (decode_step checks its buffer against cfg and the parameters' dtype):
# e2e_decode.py, greedy fp32 triton vs xla, SmolLM2 shapes with random weights, 256 tokens at
# budget 64, and the step times.  Prediction: step times as in runs 56-58 (0.53-0.92x XLA);
# tokens identical in row 1, row 0 lease-dependent at token 152 (runs 18, 40, 58 parted there).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
E2E_SKIP_RESTACK=1 timeout 420 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run63_e2e_decode_log.txt
