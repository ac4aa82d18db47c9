#!/bin/bash
# Device run 66 (diagnostic): is the exact kernel's ~8-10% over attention-only code the DRAM
# write traffic of the importance partials, or the instructions around their store?
# "pvt_sameaddr" issues the same stores (same instructions, same layouts) but every tile of a
# program writes to the addresses of tile 0 or 1, so the writes stay in L2 (wrong importance on
# purpose; the variant was removed after the run).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 400 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192 \
  --variant 'default={}' --variant 'sameaddr={"variant": "pvt_sameaddr"}' \
  --variant 'default again={}' --variant 'sameaddr again={"variant": "pvt_sameaddr"}' \
  2>&1 | grep -v -i warn | tee $OUT/run66_times_log.txt
