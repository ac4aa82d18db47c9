#!/bin/bash
# Device run 95: a replication of run 90's target rows in a fresh lease (the shipped code, no checks):
# 128 x 8192 and 8 x 2048, plus 32 x 32768 (the same K+V bytes as 128 x 8192) for SDPA's lease check.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/kernel.py --skip-check --shapes 8x2048,128x8192,32x32768 --label run95 --out $OUT \
  2>&1 | grep -v -i warn | tee $OUT/run95_kernel_log.txt | grep -E "warm-up|^\| [0-9]|Device copy|table done"
