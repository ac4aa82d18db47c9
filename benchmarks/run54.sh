#!/bin/bash
# Device run 54: launch shapes with more resident warps (run54.py).
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/run54.py --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run54_log.txt
