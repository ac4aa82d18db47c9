"""Is the benchmark harness timing the GPU work, or the harness? (H200, run 36-37)

Run 36's profile (``launch_gaps.py``) of the table's executable at 128 x 8,192
showed 1,094.6 us of GPU span per application (split kernel 1,051.8 us,
combine 37.8 us, the harness's output stacking 5.9 us) against 1,203.6 us
host-timed: ~110 us per application that is neither our kernels nor the GPU
doing anything. Torch SDPA's columns are CUDA-event (GPU) times.

This script times one op three ways at each shape, each with a profile of
one execution (GPU kernel time and span per application):

* ``stacked``: the table's method (``kernel._jit_multi``): one executable
  applies the op to each of n distinct input sets, outputs stacked;
* ``layer_loop``: the decoder's own access pattern. The n input sets are
  one stacked buffer ``[n, batch, kv_heads, slots, head_dim]``; a
  ``lax.fori_loop`` runs ``apps`` applications, application i reading set
  ``i % n`` in place through ``layer=`` (exactly how the decoder's scan over
  layers calls the kernel) with its own query; the loop carries the outputs,
  so nothing is stacked or copied and no two applications are identical
  (XLA cannot merge them: run 32);
* ``sdpa``: torch SDPA, CUDA events around a loop over the same sets, and
  ``triton.testing.do_bench``.

Usage (GPU machine): PYTHONPATH=. python benchmarks/harness_check.py --out $OUT
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

import jax
import jax.numpy as jnp

from benchmarks.kernel import (
    HEAD_DIM,
    KV_HEADS,
    Q_HEADS,
    _jit_multi,
    kv_bytes_and_sets,
    time_jax,
)
from benchmarks.launch_gaps import _trace_events, summarise
from pallas_kernels import triton_decode
from pallas_kernels.xla import longflow_attention_xla

SCALE = HEAD_DIM ** -0.5


def make_stacked(batch, slots, n_sets, apps, key):
    """K/V/valid stacked over ``n_sets`` distinct sets, one query per application."""
    kq, kk, kv, km = jax.random.split(key, 4)
    shape = (n_sets, batch, KV_HEADS, slots, HEAD_DIM)
    k = jax.random.normal(kk, shape, jnp.bfloat16)
    v = jax.random.normal(kv, shape, jnp.bfloat16)
    valid = jax.random.uniform(km, (n_sets, batch, slots)) < 0.9
    qs = jax.random.normal(kq, (apps, batch, Q_HEADS, HEAD_DIM), jnp.bfloat16)
    return jax.block_until_ready((qs, k, v, valid))


def layer_loop(op, n_sets):
    """One executable: ``apps`` applications, application i on set ``i % n_sets`` (in place)."""
    def run(qs, k, v, valid):
        def body(i, carry):
            return op(qs[i], k, v, valid, i % n_sets)
        first = op(qs[0], k, v, valid, 0)
        return jax.lax.fori_loop(1, qs.shape[0], body, first)
    return jax.jit(run)


def time_exec(fn, args, apps, reps=10, calls=4):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / (calls * apps))
    return statistics.median(times)


def profile(fn, args, apps, out_dir):
    trace_dir = os.path.join(out_dir, "trace")
    jax.block_until_ready(fn(*args))  # compile (and autotune) outside the trace
    with jax.profiler.trace(trace_dir):
        jax.block_until_ready(fn(*args))
    text = summarise(_trace_events(trace_dir), apps)
    shutil.rmtree(trace_dir, ignore_errors=True)
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192,8x2048")
    args = ap.parse_args()
    print(f"jax {jax.__version__}", flush=True)
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        kv_bytes, n_sets = kv_bytes_and_sets(batch, slots)
        apps = max(16, n_sets)
        qs, k, v, valid = make_stacked(batch, slots, n_sets, apps, jax.random.key(batch + slots))
        cfg = triton_decode.plan_config(batch, KV_HEADS, slots, HEAD_DIM, jnp.bfloat16,
                                        group=Q_HEADS // KV_HEADS)
        ops = {
            "ours": lambda q, k, v, m, layer, cfg=cfg: triton_decode.longflow_attention_triton(
                q, k, v, m, scale=SCALE, layer=layer, config=cfg),
            "xla ref": lambda q, k, v, m, layer: longflow_attention_xla(
                q, k, v, m, scale=SCALE, layer=layer),
        }
        sets = [(qs[i], k[i], v[i], valid[i]) for i in range(n_sets)]  # per-set copies
        for name, op in ops.items():
            def single(q, k, v, m, op=op):  # one layer: no stacked buffer
                return op(q, k, v, m, None)

            t_stacked = time_jax(single, sets)
            prof_stacked = profile(_jit_multi(single, n_sets), (sets,), n_sets, args.out)
            loop = layer_loop(op, n_sets)
            t_loop = time_exec(loop, (qs, k, v, valid), apps)
            prof_loop = profile(loop, (qs, k, v, valid), apps, args.out)
            print(f"b={batch} s={slots} {name}: stacked (table harness) {t_stacked * 1e6:.1f} us/app "
                  f"= {kv_bytes / t_stacked / 1e12:.2f} TB/s ({n_sets} apps)\n{prof_stacked}\n"
                  f"b={batch} s={slots} {name}: layer_loop {t_loop * 1e6:.1f} us/app = "
                  f"{kv_bytes / t_loop / 1e12:.2f} TB/s ({apps} apps)\n{prof_loop}", flush=True)
        import torch
        import torch.nn.functional as F
        import triton.testing

        from benchmarks.kernel import time_torch
        tk, tv = torch.from_dlpack(k), torch.from_dlpack(v)
        tq = torch.from_dlpack(qs)
        fns = [lambda i=i, tq=tq, tk=tk, tv=tv: F.scaled_dot_product_attention(
            tq[i][:, :, None, :], tk[i], tv[i], scale=SCALE, enable_gqa=True) for i in range(n_sets)]
        t_loop = time_torch(fns)
        t_bench = triton.testing.do_bench(fns[0], return_mode="median") * 1e-3
        print(f"b={batch} s={slots} torch SDPA: loop {t_loop * 1e6:.1f} us "
              f"({kv_bytes / t_loop / 1e12:.2f} TB/s), do_bench {t_bench * 1e6:.1f} us "
              f"({kv_bytes / t_bench / 1e12:.2f} TB/s)", flush=True)
        del tk, tv, tq, fns, sets, qs, k, v, valid
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
