#!/bin/bash
# Device run 60: the platform check now judges eager calls by the devices holding q
# (pallas_kernels/_platform.py) and checks eager vmap too.  On the H200: the device's platform
# name, every call path against impl="xla" (eager and jitted, direct and through the API, eager
# vmap), and a CPU-committed q with impl="triton" (must raise our error).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python - <<'PY' 2>&1 | grep -v -i warn | tee $OUT/run60_api_log.txt
import jax, jax.numpy as jnp, numpy as np
from pallas_kernels._platform import _device_platform
from pallas_kernels.api import longflow_decode_attention
from pallas_kernels.reference import random_decode_inputs
from pallas_kernels.triton_decode import longflow_attention_triton
print("device platform:", _device_platform(jax.devices()[0]), "default backend:", jax.default_backend())
q, k, v, valid = random_decode_inputs(np.random.default_rng(0), 4, 32, 8, 128, 1000, "random", "bfloat16")
scale = 128 ** -0.5
ref = longflow_decode_attention(q, k, v, valid, scale=scale, impl="xla")
calls = {
    "direct eager": lambda: longflow_attention_triton(q, k, v, valid, scale=scale)[:2],
    "direct eager, numpy q": lambda: longflow_attention_triton(np.asarray(q), k, v, valid, scale=scale)[:2],
    "direct jit": lambda: jax.jit(lambda *a: longflow_attention_triton(*a, scale=scale)[:2])(q, k, v, valid),
    "direct eager vmap": lambda: jax.vmap(lambda *a: longflow_attention_triton(*a, scale=scale)[:2])(
        q[:, None], k[:, None], v[:, None], valid[:, None]),
    "api eager triton": lambda: longflow_decode_attention(q, k, v, valid, scale=scale, impl="triton"),
    "api jit triton": lambda: jax.jit(lambda *a: longflow_decode_attention(*a, scale=scale, impl="triton"))(q, k, v, valid),
    "api jit auto": lambda: jax.jit(lambda *a: longflow_decode_attention(*a, scale=scale))(q, k, v, valid),
    "api eager auto": lambda: longflow_decode_attention(q, k, v, valid, scale=scale),
}
for name, call in calls.items():
    try:
        out, slot = call()
        out, slot = out.reshape(ref[0].shape), slot.reshape(ref[1].shape)
        d = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref[0].astype(jnp.float32))))
        print(f"{name}: max |out - xla| {d:.2e}, slots equal {bool((slot == ref[1]).all())}")
    except Exception as err:
        print(f"{name}: FAILED {type(err).__name__}: {str(err)[:300]}")
cpu = jax.devices("cpu")[0]
try:
    longflow_decode_attention(*(jax.device_put(x, cpu) for x in (q, k, v, valid)), scale=scale, impl="triton")
    print("cpu-committed q: no error (WRONG)")
except ValueError as err:
    print("cpu-committed q: ValueError:", str(err)[:200])
PY
