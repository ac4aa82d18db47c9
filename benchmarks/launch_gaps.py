"""Where the time of a small decode-attention call goes: GPU kernels, gaps between them, host events (H200).

At batch 1 x 1,024 slots our call measured ~38 us per application in the
benchmark harness of runs 1-30 (one executable applying the op to 32 distinct
input sets, one output buffer per set) while its two kernels run ~7 us on the
GPU (profile_small.py).  This script
times the same executable and records one jax.profiler trace of it, then
prints per op: host-timed us per application, GPU busy time and the span from
the first kernel start to the last kernel end per application, the largest
gaps between consecutive kernels, and the host-side trace events that take
the most time.

Usage (GPU machine, repo root):
  PYTHONPATH=. python benchmarks/launch_gaps.py --out $OUT [--shapes 1x1024,8x2048]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import statistics

import jax

from benchmarks.kernel import (
    HEAD_DIM,
    KV_HEADS,
    _jit_multi,
    kv_bytes_and_sets,
    make_sets,
    time_jax,
)
from pallas_kernels import triton_decode
from pallas_kernels.xla import longflow_attention_xla

SCALE = HEAD_DIM ** -0.5
N_SETS = 32  # at most; fewer where 32 sets would not fit (SET_BYTES_CAP)


def _trace_events(trace_dir: str) -> list[dict]:
    files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    with gzip.open(max(files, key=os.path.getmtime)) as f:
        return json.load(f)["traceEvents"]


def _gpu_events(events: list[dict]) -> list[dict]:
    """Kernel events of the trace's GPU rows, in start order."""
    names = {e["pid"]: str(e.get("args", {}).get("name", "")) for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    return sorted((e for e in events if e.get("ph") == "X" and "dur" in e
                   and "/device:GPU" in names.get(e.get("pid"), "")), key=lambda e: float(e["ts"]))


def gpu_span_per_app(multi, args, n_apps: int, out_dir: str) -> float:
    """Seconds from the first kernel's start to the last kernel's end of one execution of
    ``multi(*args)`` (a jax.profiler trace), divided by ``n_apps``: the GPU time of one
    application, the quantity CUDA events around a loop of launches measure.  The harness's
    own stacking copies (XLA concatenate fusions, which run after the last application)
    are left out of the span."""
    trace_dir = os.path.join(out_dir, "trace_span")
    jax.block_until_ready(multi(*args))
    with jax.profiler.trace(trace_dir):
        jax.block_until_ready(multi(*args))
    gpu = _gpu_events(_trace_events(trace_dir))
    shutil.rmtree(trace_dir, ignore_errors=True)
    end = max(float(e["ts"]) + float(e["dur"]) for e in gpu if "concatenate" not in e["name"])
    return (end - float(gpu[0]["ts"])) * 1e-6 / n_apps


def summarise(events: list[dict], n_apps: int) -> str:
    names = {e["pid"]: str(e.get("args", {}).get("name", "")) for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    gpu = _gpu_events(events)
    host = [e for e in events if e.get("ph") == "X" and "dur" in e
            and "/device:GPU" not in names.get(e.get("pid"), "")]
    lines = []
    if gpu:
        busy = sum(float(e["dur"]) for e in gpu)
        span = max(float(e["ts"]) + float(e["dur"]) for e in gpu) - float(gpu[0]["ts"])
        gaps = [float(b["ts"]) - (float(a["ts"]) + float(a["dur"])) for a, b in zip(gpu, gpu[1:])]
        lines.append(f"  GPU: {len(gpu)} kernel events, busy {busy / n_apps:.1f} us/app, span "
                     f"{span / n_apps:.1f} us/app; gaps median {statistics.median(gaps) if gaps else 0:.1f} "
                     f"us, max {max(gaps) if gaps else 0:.1f} us; largest "
                     f"{[round(g, 1) for g in sorted(gaps)[-6:]]} us")
        by_kernel = collections.defaultdict(list)
        for e in gpu:
            by_kernel[e["name"][:50]].append(float(e["dur"]))
        lines.append("  kernels: " + ", ".join(f"{k} x{len(d)} {statistics.median(d):.1f} us"
                                               for k, d in sorted(by_kernel.items(), key=lambda kv: -sum(kv[1]))[:6]))
    totals = collections.defaultdict(lambda: [0.0, 0])
    for e in host:
        t = totals[e["name"][:70]]
        t[0] += float(e["dur"])
        t[1] += 1
    for name, (dur, count) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:14]:
        lines.append(f"  host {dur / n_apps:8.1f} us/app  x{count:<5d} {name}")
    return "\n".join(lines)


def _config_value(text: str):
    """A ``--config`` value: int, true / false / none, or the string itself."""
    if text.lstrip("-").isdigit():
        return int(text)
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="1x1024,8x2048")
    ap.add_argument("--ops", default="ours,ours split kernel only,xla ref")
    ap.add_argument("--executions", type=int, default=1,
                    help="executions traced back to back (one block at the end), as the timed "
                         "loop enqueues them: shows the GPU's idle time between executions")
    ap.add_argument("--config", default="",
                    help="plan_config overrides for our ops, e.g. combine_programs=384,num_splits=2,"
                         "combine_row_loop=true")
    args = ap.parse_args()
    if args.executions < 1:
        ap.error(f"--executions must be >= 1, got {args.executions}")
    overrides = {key: _config_value(value) for key, value in
                 (item.split("=", 1) for item in args.config.split(",") if item)}
    print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", flush=True)
    for shape in args.shapes.split(","):
        batch, slots = (int(x) for x in shape.split("x"))
        _, n_sets = kv_bytes_and_sets(batch, slots, max_sets=N_SETS)
        sets = make_sets(batch, slots, n_sets, jax.random.key(batch + slots))
        cfg = triton_decode.plan_config(batch, KV_HEADS, slots, HEAD_DIM, sets[0][0].dtype, group=4,
                                        **overrides)
        print(f"b={batch} s={slots} ours: {cfg}", flush=True)
        layer = jax.numpy.zeros((1,), jax.numpy.int32)
        ops = {
            "ours": lambda q, k, v, m: triton_decode.longflow_attention_triton(
                q, k, v, m, scale=SCALE, config=cfg),
            "ours split kernel only": lambda q, k, v, m: triton_decode._split_partials(
                q, k[None], v[None], m[None], layer, scale=SCALE, cfg=cfg, interpret=False),
            "xla ref": lambda q, k, v, m: longflow_attention_xla(q, k, v, m, scale=SCALE),
        }
        for name in args.ops.split(","):
            op = ops[name]
            t = time_jax(op, sets)
            multi = _jit_multi(op, n_sets)
            jax.block_until_ready(multi(sets))
            trace_dir = os.path.join(args.out, "trace")
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                for _ in range(args.executions):
                    result = multi(sets)
                jax.block_until_ready(result)
            apps = n_sets * args.executions
            print(f"b={batch} s={slots} {name}: host-timed {t * 1e6:.1f} us/app ({apps} apps per "
                  f"executable)\n{summarise(_trace_events(trace_dir), apps)}", flush=True)
            shutil.rmtree(trace_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
