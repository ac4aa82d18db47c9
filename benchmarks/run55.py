"""Run 55 (H200): the split kernel's slot-validity load, prefetched one tile ahead.

The offline PTX (pip's Triton 3.9) of the default body issues the 64-byte validity load
of tile i right before the K/V copy wait of tile i and uses it after the first dot, so
its latency can show after the copies land; ``prefetch_valid`` loads tile i + 1's
validity at the top of tile i (through the loop carry; 126 instead of 128 registers
offline).  Prediction: up to ~5% off the split kernel if that latency shows, else a tie.

Ran once, at commit f0fb82f (kernel of 3604bb2) (log: benchmarks/run55_log.txt); it does not run on later trees:
``prefetch_valid`` was removed after this run (benchmarks/NOTES.md).

Usage (GPU machine): PYTHONPATH=. python benchmarks/run55.py --out $OUT
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
    ("default", {}),
    ("prefetch_valid", {"prefetch_valid": True}),
    ("default (again)", {}),
    ("prefetch_valid (again)", {"prefetch_valid": True}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192,32x8192,8x2048,8x32768")
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
