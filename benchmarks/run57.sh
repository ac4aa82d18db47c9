#!/bin/bash
# Device run 57: after the combine's NaN rule (a NaN importance ranks first, as jnp.argmin):
# the device checks of kernel.py (every override set), then the shipped call's kernel times at
# three shapes (profiler; the combine was 25.7-27.1 / 9.9-10.0 / 3.8-3.9 us in runs 50-55).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 300 python benchmarks/kernel.py --skip-table --out $OUT 2>&1 | grep -v -i warn | tee $OUT/run57_checks_log.txt
timeout 200 python - <<'PY' 2>&1 | grep -v -i warn | tee $OUT/run57_times_log.txt
import os, shutil, jax
from benchmarks import kernel as kb
from benchmarks.run43 import kernel_times
from pallas_kernels import triton_decode
for batch, slots in ((128, 8192), (32, 8192), (8, 2048)):
    kv_bytes, n = kb.kv_bytes_and_sets(batch, slots)
    sets = kb.make_sets(batch, slots, n, jax.random.key(batch + slots))
    cfg = triton_decode.plan_config(batch, kb.KV_HEADS, slots, kb.HEAD_DIM, sets[0][0].dtype, group=4)
    op = lambda q, k, v, m: triton_decode.longflow_attention_triton(q, k, v, m, scale=kb.HEAD_DIM ** -0.5, config=cfg)
    t = kb.time_jax(op, sets)
    multi = kb._jit_multi(op, n)
    jax.block_until_ready(multi(sets))
    d = os.path.join(os.environ.get("OUT", "."), "trace")
    with jax.profiler.trace(d):
        jax.block_until_ready(multi(sets))
    print(f"b={batch} s={slots} host {t * 1e6:.1f} us/app = {kv_bytes / t / 1e12:.3f} TB/s | {kernel_times(d, n)}", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    del sets
PY
