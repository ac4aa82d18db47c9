#!/bin/bash
# Device run 51: registers / shared memory of the split kernels as XLA's Triton compiles them
# (PTX dumped by XLA, ptxas -v on the device), headline shape 128 x 8192.
export PYTHONPATH=. PYTHONUNBUFFERED=1
PTXAS=$(python - <<'PY'
import os, glob, site
c = []
for d in site.getsitepackages():
    c += glob.glob(os.path.join(d, "nvidia", "**", "ptxas"), recursive=True)
    c += glob.glob(os.path.join(d, "triton", "**", "ptxas"), recursive=True)
print(c[0] if c else "")
PY
)
echo "ptxas: $PTXAS"
for P in none 528; do
  rm -rf /tmp/dump_$P
  XLA_FLAGS="--xla_dump_to=/tmp/dump_$P" timeout 200 python - "$P" <<'PY'
import sys, jax, jax.numpy as jnp
from pallas_kernels import triton_decode
P = None if sys.argv[1] == "none" else int(sys.argv[1])
b, s = 128, 8192
cfg = triton_decode.plan_config(b, 8, s, 128, jnp.bfloat16, group=4, balanced_programs=P)
f = jax.jit(lambda q, k, v, m: triton_decode.longflow_attention_triton(q, k, v, m, scale=0.088, config=cfg))
args = (jax.ShapeDtypeStruct((b, 32, 128), jnp.bfloat16), jax.ShapeDtypeStruct((b, 8, s, 128), jnp.bfloat16),
        jax.ShapeDtypeStruct((b, 8, s, 128), jnp.bfloat16), jax.ShapeDtypeStruct((b, s), jnp.bool_))
f.lower(*args).compile()
print("compiled", P)
PY
  for f in $(ls /tmp/dump_$P/*.ptx 2>/dev/null); do
    echo "== $P $(basename $f)"
    $PTXAS -arch=sm_90a -v $f -o /tmp/x.cubin 2>&1 | grep -B1 -i "registers" | grep -i "function properties\|Compiling\|registers\|smem" | head -20
  done
  ls /tmp/dump_$P | grep -i "ptx\|triton" | head -10
done
