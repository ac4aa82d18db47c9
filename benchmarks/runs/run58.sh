#!/bin/bash
# Device run 58: the platform check now lives in the kernels' own entry points
# (pallas_kernels/_platform.py).  On the GPU: eager and jitted longflow_attention_triton called
# directly, and the public API with impl="triton"/"auto", all against impl="xla"; the device
# checks of kernel.py with the chosen launch; then e2e_decode.py (decoder, triton vs xla).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python - <<'PY' 2>&1 | grep -v -i warn | tee $OUT/run58_api_log.txt
import jax, jax.numpy as jnp, numpy as np
from pallas_kernels.api import longflow_decode_attention
from pallas_kernels.reference import random_decode_inputs
from pallas_kernels.triton_decode import longflow_attention_triton
q, k, v, valid = random_decode_inputs(np.random.default_rng(0), 4, 32, 8, 128, 1000, "random", "bfloat16")
scale = 128 ** -0.5
ref = longflow_decode_attention(q, k, v, valid, scale=scale, impl="xla")
calls = {
    "direct eager": lambda: longflow_attention_triton(q, k, v, valid, scale=scale)[:2],
    "direct jit": lambda: jax.jit(lambda *a: longflow_attention_triton(*a, scale=scale)[:2])(q, k, v, valid),
    "api jit triton": lambda: jax.jit(lambda *a: longflow_decode_attention(*a, scale=scale, impl="triton"))(q, k, v, valid),
    "api jit auto": lambda: jax.jit(lambda *a: longflow_decode_attention(*a, scale=scale))(q, k, v, valid),
    "api eager auto": lambda: longflow_decode_attention(q, k, v, valid, scale=scale),
}
for name, call in calls.items():
    out, slot = call()
    d = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref[0].astype(jnp.float32))))
    print(f"{name}: max |out - xla| {d:.2e}, slots equal {bool((slot == ref[1]).all())}")
PY
timeout 240 python benchmarks/kernel.py --skip-table --quick-check --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run58_checks_log.txt
E2E_SKIP_RESTACK=1 timeout 300 python benchmarks/e2e_decode.py 2>&1 | grep -v -i warn | tee $OUT/run58_e2e_decode_log.txt
