"""Launch A/B on the H200: host time and per-kernel GPU time of split-kernel launch shapes.

For each shape, one list of input sets; for each variant (``plan_config``
overrides), the host-timed time per application with the table's harness
(``kernel.time_jax``) and the median duration of each kernel from one
jax.profiler trace of the table's executable, plus its GPU span.  List the
default first and last to see the lease's drift.

Usage (GPU machine)::

    PYTHONPATH=. python benchmarks/launch_ab.py --out $OUT --shapes 128x8192,8x2048 \\
        --variant 'default={}' --variant '8 warps={"num_warps": 8}' --variant 'default again={}'
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import time

import jax

from benchmarks import kernel as kb
from benchmarks.launch_gaps import _gpu_events, _trace_events
from pallas_kernels import triton_decode

SCALE = kb.HEAD_DIM ** -0.5


def kernel_times(trace_dir: str, n_apps: int) -> str:
    """GPU span per application and the median duration of each kernel in a trace."""
    gpu = _gpu_events(_trace_events(trace_dir))
    by_kernel = collections.defaultdict(list)
    for e in gpu:
        by_kernel[e["name"][:40]].append(float(e["dur"]))
    span = float(gpu[-1]["ts"]) + float(gpu[-1]["dur"]) - float(gpu[0]["ts"])  # as run
    parts = ", ".join(f"{k} x{len(d)} {statistics.median(d):.1f}" for k, d in
                      sorted(by_kernel.items(), key=lambda kv: -sum(kv[1])))
    return f"GPU span {span / n_apps:.1f} us/app; kernels (median us): {parts}"


def time_launch(batch, slots, sets, overrides: dict, out_dir: str) -> str:
    """One line: host time / bandwidth and the profiled kernel times of one launch."""
    kv_bytes, n_sets = kb.kv_bytes_and_sets(batch, slots)
    cfg = triton_decode.plan_config(batch, kb.KV_HEADS, slots, kb.HEAD_DIM, sets[0][0].dtype,
                                    group=4, **overrides)
    op = lambda q, k, v, m: triton_decode.longflow_attention_triton(  # noqa: E731
        q, k, v, m, scale=SCALE, config=cfg)
    t = kb.time_jax(op, sets)
    multi = kb._jit_multi(op, n_sets)
    jax.block_until_ready(multi(sets))
    trace_dir = os.path.join(out_dir, "trace")
    with jax.profiler.trace(trace_dir):
        jax.block_until_ready(multi(sets))
    prof = kernel_times(trace_dir, n_sets)
    shutil.rmtree(trace_dir, ignore_errors=True)
    return f"host {t * 1e6:.1f} us/app = {kv_bytes / t / 1e12:.3f} TB/s | {prof}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192", help="batch x slots, comma separated")
    ap.add_argument("--variant", action="append", default=[],
                    help="'label=JSON plan_config overrides' (repeatable; default: 'default={}')")
    args = ap.parse_args()
    variants = [(v.split("=", 1)[0], json.loads(v.split("=", 1)[1]))
                for v in args.variant or ["default={}"]]
    print(f"jax {jax.__version__}", flush=True)
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        _, n_sets = kb.kv_bytes_and_sets(batch, slots)
        sets = kb.make_sets(batch, slots, n_sets, jax.random.key(batch + slots))
        for label, overrides in variants:
            t0 = time.time()
            try:
                line = time_launch(batch, slots, sets, overrides, args.out)
            except Exception as err:  # keep going: one failure must not lose the rest
                line = f"FAILED {type(err).__name__}: {str(err)[:400]}"
            print(f"b={batch} s={slots} [{label}] {line} ({time.time() - t0:.0f}s)", flush=True)
        del sets


if __name__ == "__main__":
    main()
