#!/bin/bash
# Device run 34: one- and two-warp launch candidates, split kernel alone (benchmarks/runs/run34.py).
# Phase 2 of run34.py stopped at a KeyError (fixed since): only phase 1 was measured.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/runs/run34.py 2>&1 | grep -v -i warn | tee $OUT/run34_ab_log.txt
