#!/bin/bash
# Device run 35: run 27 again through the public loader (e2e_real.py after its review fix:
# load_model reads the GGUF, with transformers' torch-free tokenizer converter). Same protocol:
#   call 1 (carry .carry/p1):             cp .carry/p1 /tmp/p1
#   call 2 (carry .carry/p2, .carry/gguf): bash benchmarks/runs/run35.sh
set -o pipefail
export PYTHONUNBUFFERED=1
cat /tmp/p1 .carry/p2 > /tmp/smollm2.gguf && sha256sum /tmp/smollm2.gguf | cut -c1-16
PYTHONPATH=.:.carry python benchmarks/e2e_real.py /tmp/smollm2.gguf $OUT 2>&1 | grep -v Warning | tee $OUT/e2e_real_log.txt
