#!/bin/bash
# Device run 27, two calls of one warm lease (the GGUF is 98 MB, one call carries 64 MiB):
#   here:  head -c 49181216 MODEL.gguf > .carry/p1; tail -c +49181217 MODEL.gguf > .carry/p2
#          cp -r .venv/lib/python3.11/site-packages/gguf .carry/   (.carry/ is git-ignored locally)
#   call 1 (carry .carry/p1):             cp .carry/p1 /tmp/p1
#   call 2 (carry .carry/p2, .carry/gguf): bash benchmarks/runs/run27.sh
# greedy fp32 decoding of the real SmolLM2-135M-Instruct, kernel vs XLA, 256 tokens at budget 64,
# then the device correctness checks of every kernel body.
set -o pipefail
export PYTHONUNBUFFERED=1
cat /tmp/p1 .carry/p2 > /tmp/smollm2.gguf && sha256sum /tmp/smollm2.gguf | cut -c1-16
PYTHONPATH=.:.carry python benchmarks/e2e_real.py /tmp/smollm2.gguf $OUT 2>&1 | grep -v Warning | tee $OUT/e2e_real_log.txt
PYTHONPATH=. timeout 240 python benchmarks/kernel.py --quick-check --skip-table 2>&1 | tail -50 > $OUT/checks.txt
grep -c PASS $OUT/checks.txt; grep -E "FAIL|Error" $OUT/checks.txt | head
