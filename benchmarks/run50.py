"""Run 50 (H200): the balanced (stream-K) schedule of the split kernel against the rows schedule.

Prediction (benchmarks/NOTES.md, run 50): at 128 x 8192 the rows schedule runs
1024 programs of 128 tiles in 528 resident slots (1.94 waves, the second 94%
full); if a program's time does not shrink when fewer run beside it, a
balanced launch of 527 programs of 249 tiles saves up to 3% of the split
kernel.

First the device checks with the balanced launch ("pvt" body for both dtypes,
balanced_programs=528) against the float64 reference; then for each shape and
launch: host-timed time per application (the table's harness) and the GPU time
of each kernel (median durations from one jax.profiler trace), the rows
default first and last (drift).

Ran once, at commit dc2fc2e (log: benchmarks/run50_log.txt); it does not run on later trees:
the balanced schedule (``balanced_programs``) was removed after run 53 (benchmarks/NOTES.md).

Usage (GPU machine): PYTHONPATH=. python benchmarks/run50.py --out $OUT
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import jax
import numpy as np

from benchmarks import kernel as kb
from benchmarks.run43 import kernel_times
from pallas_kernels import triton_decode

SCALE = kb.HEAD_DIM ** -0.5
VARIANTS = [  # label, plan_config overrides
    ("rows (default)", {}),
    ("balanced 528", {"balanced_programs": 528}),
    ("balanced 1056", {"balanced_programs": 1056}),
    ("balanced 396", {"balanced_programs": 396}),
    ("rows (default, again)", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192,32x8192,8x2048,8x32768,128x32768")
    ap.add_argument("--skip-check", action="store_true")
    args = ap.parse_args()
    print(f"jax {jax.__version__}", flush=True)
    if not args.skip_check:
        t0 = time.time()
        kb.OVERRIDES.clear()
        kb.OVERRIDES.update({"variant": "pvt", "balanced_programs": 528})
        ok = kb.correctness(np.random.default_rng(int(time.time())), quick=True)
        kb.OVERRIDES.clear()
        print(f"balanced checks {'PASS' if ok else 'FAIL'} ({time.time() - t0:.0f}s)", flush=True)
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
