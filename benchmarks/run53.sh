#!/bin/bash
# Device run 53: register cost of the balanced split kernel's parts (run53.py).
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/run53.py --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run53_log.txt
