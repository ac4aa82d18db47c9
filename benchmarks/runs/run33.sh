#!/bin/bash
# Device run 33 (last device minutes): KV heads packed into the dot's 16 rows
# (benchmarks/packed_heads.py, removed after this run; see commit c94f5fd) against the default,
# full calls cross-checked against it.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 200 python benchmarks/ab.py --shapes 128x8192,32x8192 \
  --variants pvt,pack_bk16,pack_bk32,pack_bk32_w8,pvt_kernel,pack_bk16_kernel 2>&1 | tee $OUT/ab.txt
