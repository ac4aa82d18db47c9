"""Run 53 (H200): which part of the balanced split kernel costs its registers.

Run 52 (Nsight Compute): the balanced kernel compiled by XLA's Triton takes
168 registers per thread (3 programs per SM) against the rows kernel's 128 (4),
although pip's Triton 3.9 compiles both to 128.  Here, at 128 x 8192 and
balanced_programs 528 (one wave only if 4 programs fit per SM) against 396 (one
wave at 3 per SM): the kernel without the in-loop fills of unused pieces (now
the default: the combine masks them by count), and benchmark-only ablations
with WRONG outputs (``triton_decode._BALANCED_ABLATION``).  If a launch of 528
runs about as fast as the rows kernel or faster, 4 programs fit.

Ran once, at commit e2c5239 (log: benchmarks/run53_log.txt); it does not
run on later trees: the balanced schedule and its ablations were removed after this run.

Usage (GPU machine): PYTHONPATH=. python benchmarks/run53.py --out $OUT
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import jax

from benchmarks import kernel as kb
from benchmarks.run43 import kernel_times
from pallas_kernels import triton_decode

SCALE = kb.HEAD_DIM ** -0.5
VARIANTS = [  # label, plan_config overrides, ablation
    ("rows (default)", {}, None),
    ("balanced 528", {"balanced_programs": 528}, None),
    ("balanced 396", {"balanced_programs": 396}, None),
    ("balanced 528, ablation o_at_end", {"balanced_programs": 528}, "o_at_end"),
    ("balanced 528, ablation no_flush", {"balanced_programs": 528}, "no_flush"),
    ("balanced 528, ablation q_once", {"balanced_programs": 528}, "q_once"),
    ("rows (default, again)", {}, None),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192")
    args = ap.parse_args()
    print(f"jax {jax.__version__}", flush=True)
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        kv_bytes, n_sets = kb.kv_bytes_and_sets(batch, slots)
        sets = kb.make_sets(batch, slots, n_sets, jax.random.key(batch + slots))
        for label, overrides, ablation in VARIANTS:
            triton_decode._BALANCED_ABLATION = ablation
            try:
                t0 = time.time()
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
                      f"{kv_bytes / t / 1e12:.3f} TB/s | {prof} ({time.time() - t0:.0f}s)",
                      flush=True)
            except Exception as err:  # keep going
                print(f"b={batch} s={slots} [{label}] FAILED {type(err).__name__}: "
                      f"{str(err)[:400]}", flush=True)
        triton_decode._BALANCED_ABLATION = None
        del sets


if __name__ == "__main__":
    main()
