#!/bin/bash
# Device run 43: L2 hints for the importance partials, combine launch shapes, harness (run43.py).
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 560 python benchmarks/run43.py --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run43_log.txt
