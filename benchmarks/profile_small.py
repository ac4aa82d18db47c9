"""Device-side time of each kernel of one decode-attention call at small shapes (H200).

The table in RESULTS.md times whole calls from the host; at small shapes ours,
the XLA reference and SDPA all sit at 25-45 us, and host-side timing cannot say
how much of that is GPU work.  This script records a jax.profiler trace of a
few calls per shape and prints, per kernel name, the median GPU duration and
the total per call (launch gaps excluded).

Usage (GPU machine, repo root):  PYTHONPATH=. python benchmarks/profile_small.py --out $OUT
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import statistics

import jax

from benchmarks.kernel import HEAD_DIM, make_sets
from pallas_kernels import triton_decode
from pallas_kernels.xla import longflow_attention_xla

SHAPES = ((1, 1024), (1, 2048), (1, 8192), (8, 2048))
CALLS = 20


def kernel_durations(trace_dir: str) -> dict[str, list[float]]:
    """GPU kernel durations (us) by name from the perfetto trace jax.profiler wrote."""
    files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    if not files:
        return {}
    with gzip.open(max(files, key=os.path.getmtime)) as f:
        events = json.load(f)["traceEvents"]
    gpu_pids = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
                and "/device:GPU" in str(e.get("args", {}).get("name", ""))}
    if not gpu_pids:
        print("no GPU process in the trace; processes:",
              [e.get("args", {}).get("name") for e in events if e.get("name") == "process_name"])
    out = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("pid") in gpu_pids and "dur" in e:
            out[e["name"]].append(float(e["dur"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    scale = HEAD_DIM ** -0.5
    key = jax.random.key(0)

    def ours(q, k, v, m):
        return triton_decode.longflow_attention_triton(q, k, v, m, scale=scale)

    def xla(q, k, v, m):
        return longflow_attention_xla(q, k, v, m, scale=scale)

    for batch, slots in SHAPES:
        (q, k, v, m), = make_sets(batch, slots, 1, key)
        for name, op in (("ours", ours), ("xla", xla)):
            fn = jax.jit(op)
            jax.block_until_ready(fn(q, k, v, m))
            trace_dir = os.path.join(args.out, f"trace_{name}_{batch}x{slots}")
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                for _ in range(CALLS):
                    res = fn(q, k, v, m)
                jax.block_until_ready(res)
            durs = kernel_durations(trace_dir)
            per_call = sum(sum(d) for d in durs.values()) / CALLS
            parts = ", ".join(f"{n[:40]} x{len(d) // CALLS} {statistics.median(d):.1f} us"
                              for n, d in sorted(durs.items(), key=lambda kv: -sum(kv[1])))
            print(f"b={batch} s={slots} {name}: GPU {per_call:.1f} us/call [{parts}]", flush=True)
            for f in glob.glob(os.path.join(trace_dir, "**", "*"), recursive=True):
                if os.path.isfile(f):
                    os.remove(f)  # keep $OUT small: the printed summary is the result


if __name__ == "__main__":
    main()
