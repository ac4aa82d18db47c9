"""Run 54 (H200): launch shapes of the split kernel with more resident warps per SM.

Run 53: the balanced kernel without its per-tile q load ran at 4 programs per SM but
2.7% slower than the rows kernel, so the rows kernel's ragged second wave costs little.  The
offline compile (pip's Triton 3.9; it matched the device for the rows kernel: 128
registers) gives 80 registers at 8 warps and 96 at 32-slot tiles: more resident warps
per SM.  Runs 3 and 23 measured these launch shapes slower with older kernel bodies; this
is the current body.

Usage (GPU machine): PYTHONPATH=. python benchmarks/run54.py --out $OUT
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
VARIANTS = [  # label, plan_config overrides
    ("rows (default: 4 warps, 64-slot tiles, 2 stages; 128 registers, 4 per SM)", {}),
    ("8 warps (80 registers offline: 3 per SM = 24 warps)", {"num_warps": 8}),
    ("8 warps, 3 splits (3072 programs = 7.8 waves of 396)",
     {"num_warps": 8, "num_splits": 3}),
    ("32-slot tiles, 3 stages (96 registers, 37.9 KB: 5 per SM)",
     {"block_k": 32, "num_stages": 3}),
    ("rows (default, again)", {}),
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
        for label, overrides in VARIANTS:
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
        del sets


if __name__ == "__main__":
    main()
