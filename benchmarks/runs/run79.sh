#!/bin/bash
# Device run 79: run 77/78 timed the row-loop combine at 66 us (128 x 8192), 2.3x run 75's 29 us;
# offline SASS (Triton 3.9) of the shipped combine equals run 75's but for 32 FMUL.  Suspect: the
# row stats became [1]-shaped tensors (33b6de7, reusing _softmax_stats) instead of scalars, which
# the device's Triton may broadcast inside the loop.  A/B of whole package copies (abvar/*, not
# committed): shipped, scalars by reducing _softmax_stats' [1] results ("fix"), run 75's 1-D loads
# to scalars ("old", with 64d99cd's rounding).  Shipped first and last to see the lease's drift.
set -o pipefail
export PYTHONUNBUFFERED=1
for v in shipped:. fix:abvar/fix old:abvar/old "shipped again:."; do
  name=${v%%:*}; root=${v#*:}
  PYTHONPATH=$root:. timeout 120 python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,32x8192 \
    --variant "$name={}" 2>&1 | grep -v -i warn | grep "^b=" | tee -a $OUT/run79_times_log.txt
done
