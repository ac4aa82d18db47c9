#!/bin/bash
# Device run 56: the explicit-impl platform check on the GPU (jit, impl="triton" against
# impl="xla" and "auto"), then e2e_decode.py (the decoder with attn_impl "triton" vs "xla").
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python - <<'PY' 2>&1 | grep -v -i warn | tee $OUT/run56_api_log.txt
import jax, jax.numpy as jnp, numpy as np
from pallas_kernels.api import longflow_decode_attention
from pallas_kernels.reference import random_decode_inputs
q, k, v, valid = random_decode_inputs(np.random.default_rng(0), 4, 32, 8, 128, 1000, "random", "bfloat16")
res = {impl: jax.jit(lambda *a, impl=impl: longflow_decode_attention(*a, scale=128 ** -0.5, impl=impl))(q, k, v, valid)
       for impl in ("triton", "auto", "xla")}
for impl in ("triton", "auto"):
    d = float(jnp.max(jnp.abs(res[impl][0].astype(jnp.float32) - res["xla"][0].astype(jnp.float32))))
    print(f"jit impl={impl}: max |out - xla| {d:.2e}, slots equal {bool((res[impl][1] == res['xla'][1]).all())}")
PY
E2E_SKIP_RESTACK=1 timeout 400 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run56_e2e_decode_log.txt
