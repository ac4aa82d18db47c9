#!/bin/bash
# Device run 30: where a small call's ~38 us go (GPU kernels vs gaps vs host events), with XLA's
# default command buffers and with command buffers off.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/launch_gaps.py --out $OUT 2>&1 | grep -v Warning | tee $OUT/gaps_default.txt
XLA_FLAGS=--xla_gpu_enable_command_buffer= python benchmarks/launch_gaps.py --out $OUT 2>&1 \
  | grep -v Warning | tee $OUT/gaps_nocmdbuf.txt
