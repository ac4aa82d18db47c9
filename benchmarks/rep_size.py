"""Does the table's host-timed number carry a fixed cost per timed repetition? (H200, run 73)

Run 72 traced four executions of the table's executable back to back at 128 x 8,192: no GPU
idle time between them (largest gap 2.9 us), yet the host-timed number sat 28 us per
application (2.5%) above the GPU span.  A repetition enqueues ``calls`` executions and blocks
once; if a fixed cost per repetition (the first dispatch before the GPU starts, the final
wake-up) explains the excess, it shrinks as 1 / (work per repetition).  This script times the
same executable with repetitions of 0.05, 0.2 and 0.5 s of work (interleaved, three rounds),
and the slope ``(T(2n) - T(n)) / n`` of repetitions of n and 2n executions, which cancels any
fixed cost; next to it, the GPU span of one profiled execution.

Usage (GPU machine): PYTHONPATH=. python benchmarks/rep_size.py --out $OUT [--shapes 128x8192]
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax

from benchmarks import kernel as kb
from benchmarks.launch_gaps import gpu_span_per_app
from pallas_kernels import triton_decode

TARGETS_S = (0.05, 0.2, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="128x8192,8x2048")
    args = ap.parse_args()
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        kv_bytes, n_sets = kb.kv_bytes_and_sets(batch, slots)
        sets = kb.make_sets(batch, slots, n_sets, jax.random.key(batch + slots))
        cfg = triton_decode.plan_config(batch, kb.KV_HEADS, slots, kb.HEAD_DIM,
                                        sets[0][0].dtype, group=4)
        op = lambda q, k, v, m: triton_decode.longflow_attention_triton(  # noqa: E731
            q, k, v, m, scale=kb.HEAD_DIM ** -0.5, config=cfg)
        multi = kb._jit_multi(op, n_sets)
        jax.block_until_ready(multi(sets))
        calls = {t: kb._calls_per_rep(multi, sets, target_s=t, max_calls=10_000) for t in TARGETS_S}
        per_app = {t: [] for t in TARGETS_S}
        n = calls[TARGETS_S[0]]
        slope = []
        for _ in range(3):
            for t in TARGETS_S:
                for _ in range(3):
                    per_app[t].append(kb.rep_seconds(multi, sets, calls[t]) / (calls[t] * n_sets))
            for _ in range(3):
                one, two = kb.rep_seconds(multi, sets, n), kb.rep_seconds(multi, sets, 2 * n)
                slope.append((two - one) / (n * n_sets))
        span = gpu_span_per_app(multi, (sets,), n_sets, args.out)
        cells = ", ".join(f"{t} s ({calls[t]} calls) {statistics.median(v) * 1e6:.1f} us"
                          for t, v in per_app.items())
        print(f"b={batch} s={slots} ({n_sets} sets): host-timed per app: {cells}; slope "
              f"{statistics.median(slope) * 1e6:.1f} us; GPU span {span * 1e6:.1f} us "
              f"(= {kv_bytes / span / 1e12:.3f} TB/s)", flush=True)
        del sets


if __name__ == "__main__":
    main()
