#!/bin/bash
# Device run 50: balanced (stream-K) split kernel vs the rows schedule (run50.py).
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 570 python benchmarks/run50.py --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run50_log.txt
