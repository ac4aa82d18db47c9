#!/bin/bash
# Device run 52 (ran at commit c5660e4; output: benchmarks/run52_ncu.txt): Nsight Compute launch statistics (registers, shared memory, block limits) of the
# rows and balanced split kernels at 128 x 8192 as XLA's Triton compiles them.
export PYTHONPATH=. PYTHONUNBUFFERED=1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
cat > /tmp/one.py <<'PY'
import sys, jax, jax.numpy as jnp
from benchmarks import kernel as kb
from pallas_kernels import triton_decode
P = None if sys.argv[1] == "none" else int(sys.argv[1])
b, s = 128, 8192
cfg = triton_decode.plan_config(b, 8, s, 128, jnp.bfloat16, group=4, balanced_programs=P)
(q, k, v, m), = kb.make_sets(b, s, 1, jax.random.key(0))
f = jax.jit(lambda q, k, v, m: triton_decode.longflow_attention_triton(q, k, v, m, scale=0.088, config=cfg))
for _ in range(2):
    jax.block_until_ready(f(q, k, v, m))
PY
for P in none 528; do
  timeout 120 $NCU --section LaunchStats --section Occupancy --section SpeedOfLight \
    -k "regex:longflow_decode_(split|balanced)" --launch-skip 1 --launch-count 1 \
    python /tmp/one.py $P > /tmp/ncu_$P.txt 2>&1
  echo "== balanced_programs=$P rc=$?"
  grep -E "longflow|Duration|DRAM Throughput|Registers Per|Shared Memory Configuration Size|Dynamic Shared|Static Shared|Block Limit|Achieved Occupancy|Theoretical Occupancy|Waves Per SM|Grid Size" /tmp/ncu_$P.txt
done
