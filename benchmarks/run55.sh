#!/bin/bash
# Device run 55: slot-validity prefetch (run55.py).
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/run55.py --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run55_log.txt
