#!/bin/bash
# Device run 44: the 16-row table with the shipped code (combine chunk-count model of run 43;
# harness: ~50 ms per repetition, up to 24 GB of input sets, outputs unstacked below 8 sets),
# quick device checks first. Also stages the first half of the GGUF (carry .carry/p1) for
# run 45 (bash benchmarks/runs/run45.sh, carry .carry/p2 .carry/gguf) in the same lease.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
[ -f .carry/p1 ] && cp .carry/p1 /tmp/p1
# Two splits per row at 128 x 8192 (2048 programs of 64 tiles, 3.9 waves) against one (1024 of
# 128 tiles, 1.9 waves): the wave model calls them a near tie (260 vs 258); GPU time decides.
for cfg in "" num_splits=2 ""; do
  echo "== config: ${cfg:-default}"
  timeout 100 python benchmarks/launch_gaps.py --out $OUT --shapes 128x8192 --ops ours --config "$cfg" 2>&1 \
    | grep -E "host-timed|GPU:|kernels:"
done
timeout 450 python benchmarks/kernel.py --quick-check --label run44 --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run44_kernel_log.txt | grep -E "correctness|^\| 128 \| 8192|^\| 8 \| 2048|table done"
