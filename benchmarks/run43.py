"""Run 43 (H200): L2 hints for the importance partials, combine launch shapes, and the harness.

For each shape, one set of inputs; for each launch variant: the GPU time of the
split kernel and of the combine (median kernel durations from one
jax.profiler trace of the table's executable), the GPU span per application,
and the host-timed time per application with the table's harness. The
default runs first and last (drift). At the end, per shape, the default
through the harness of runs 1-42 (4 executions per repetition, outputs
stacked) next to the current one, and torch SDPA's CUDA-event loop.

Usage (GPU machine): PYTHONPATH=. python benchmarks/run43.py --out $OUT

Ran once, at commit 261956a (log: benchmarks/run43_log.txt); it does not run
on later trees. After it the combine's single-chunk rule that two variants
switch off was replaced by the chunk-count model
(``triton_combine.plan_combine``), and the ``partial_eviction`` knob (L2
``evict_last`` stores of the partials, read back ``evict_first``) was removed:
it took 1.2 us off the combine at 128 x 8192 and added ~3 us to the split kernel.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics

import jax

from benchmarks import kernel as kb
from benchmarks.launch_gaps import _gpu_events, _trace_events
from pallas_kernels import triton_combine, triton_decode

SCALE = kb.HEAD_DIM ** -0.5
VARIANTS = [  # label, plan_config overrides, triton_combine._SINGLE_CHUNK_STEPS
    ("default", {}, None),
    ("partials evict_last", {"partial_eviction": "evict_last"}, None),
    ("partials evict_last + kv evict_first",
     {"partial_eviction": "evict_last", "kv_eviction": "evict_first"}, None),
    ("combine_programs=384", {"combine_programs": 384}, None),
    ("combine_programs=264", {"combine_programs": 264}, None),
    ("combine_programs=792", {"combine_programs": 792}, None),
    ("evict_last + combine_programs=384",
     {"partial_eviction": "evict_last", "combine_programs": 384}, None),
    ("several chunks at small rows (single-chunk rule off)", {}, 1),
    ("evict_last + single-chunk rule off", {"partial_eviction": "evict_last"}, 1),
    ("default (again)", {}, None),
]


def kernel_times(trace_dir: str, n_apps: int) -> str:
    gpu = _gpu_events(_trace_events(trace_dir))
    by_kernel = collections.defaultdict(list)
    for e in gpu:
        by_kernel[e["name"][:40]].append(float(e["dur"]))
    span = float(gpu[-1]["ts"]) + float(gpu[-1]["dur"]) - float(gpu[0]["ts"])  # as run
    parts = ", ".join(f"{k} x{len(d)} {statistics.median(d):.1f}" for k, d in
                      sorted(by_kernel.items(), key=lambda kv: -sum(kv[1])))
    return f"GPU span {span / n_apps:.1f} us/app; kernels (median us): {parts}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192,32x8192,8x2048")
    args = ap.parse_args()
    print(f"jax {jax.__version__}", flush=True)
    default_steps = triton_combine._SINGLE_CHUNK_STEPS
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        kv_bytes, n_sets = kb.kv_bytes_and_sets(batch, slots)
        sets = kb.make_sets(batch, slots, n_sets, jax.random.key(batch + slots))
        for label, overrides, steps in VARIANTS:
            triton_combine._SINGLE_CHUNK_STEPS = default_steps if steps is None else steps
            try:
                cfg = triton_decode.plan_config(batch, kb.KV_HEADS, slots, kb.HEAD_DIM,
                                                sets[0][0].dtype, group=4, **overrides)
                op = lambda q, k, v, m, cfg=cfg: triton_decode.longflow_attention_triton(  # noqa: E731
                    q, k, v, m, scale=SCALE, config=cfg)
                t = kb.time_jax(op, sets)
                multi = kb._jit_multi(op, n_sets)
                jax.block_until_ready(multi(sets))
                trace_dir = os.path.join(args.out, "trace")
                with jax.profiler.trace(trace_dir):
                    jax.block_until_ready(multi(sets))
                prof = kernel_times(trace_dir, n_sets)
                shutil.rmtree(trace_dir, ignore_errors=True)
                print(f"b={batch} s={slots} [{label}] host {t * 1e6:.1f} us/app = "
                      f"{kv_bytes / t / 1e12:.3f} TB/s | {prof}", flush=True)
            except Exception as err:  # keep going
                print(f"b={batch} s={slots} [{label}] FAILED {type(err).__name__}: {str(err)[:400]}",
                      flush=True)
        triton_combine._SINGLE_CHUNK_STEPS = default_steps
        cfg = triton_decode.plan_config(batch, kb.KV_HEADS, slots, kb.HEAD_DIM, sets[0][0].dtype,
                                        group=4)
        op = lambda q, k, v, m, cfg=cfg: triton_decode.longflow_attention_triton(  # noqa: E731
            q, k, v, m, scale=SCALE, config=cfg)
        old = kb._jit_multi(op, kb.STACK_MIN_SETS)  # stacked outputs, as in runs 1-42
        jax.block_until_ready(old(sets))
        t_old = statistics.median(kb._rep_times(old, sets, 5, 0.6, 4))
        t_new = kb.time_jax(op, sets)
        import torch
        import torch.nn.functional as F
        tsets = [tuple(torch.from_dlpack(x) for x in s[:3]) for s in sets]
        fns = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(
            q[:, :, None, :], k, v, scale=SCALE, enable_gqa=True) for q, k, v in tsets]
        t_sdpa = kb.time_torch(fns)
        print(f"b={batch} s={slots} harness: runs 1-42 {t_old * 1e6:.1f} us, now {t_new * 1e6:.1f} us "
              f"({kv_bytes / t_new / 1e12:.3f} TB/s); SDPA loop {t_sdpa * 1e6:.1f} us", flush=True)
        del sets, tsets, fns
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
