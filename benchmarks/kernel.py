"""Device check + benchmark of the LongFlow decode kernels (one run, H200).

Usage (on the GPU machine):  PYTHONUNBUFFERED=1 python3 benchmarks/kernel.py --out $OUT

1. Correctness on the device: Triton kernel (fp32, bf16) vs the float64 NumPy
   reference computed on the host.
2. A small launch-config sweep at the shapes that matter (optional, --sweep).
3. The timing table, 32 q / 8 kv heads, head_dim 128, bf16: our kernel, the
   jitted XLA contract, jax's Pallas ``decode_attention.gqa`` and torch SDPA
   (attention only), plus the device copy bandwidth.

JAX work runs on its own stream, so JAX timings are wall clock around one
jitted executable that applies the op to ``n`` distinct input sets in sequence
(distinct so the 50 MB L2 cannot serve repeats; several so dispatch is
amortised), median over repetitions, divided by ``n``.  Torch SDPA is timed
the same way (a loop over the same buffers, shared through DLPack, between
CUDA events) and also with ``triton.testing.do_bench`` (median).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels import triton_decode  # noqa: E402
from pallas_kernels.reference import longflow_attention_reference, random_decode_inputs  # noqa: E402
from pallas_kernels.xla import longflow_attention_xla  # noqa: E402

Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
BATCHES = (1, 8, 32, 128)
SLOTS = (1024, 2048, 8192, 32768)
# Bytes of K+V across all distinct input sets of one shape (the table also holds jax
# gqa's transposed copies: twice this). 8e9 in runs 1-43, which left 2 sets at
# 128 x 8192, so a fixed cost per execution (~30 us) fell on only 2 applications.
SET_BYTES_CAP = 24e9
MAX_SETS = 32


def kv_bytes_and_sets(batch, slots, kv_heads=KV_HEADS, head_dim=HEAD_DIM, itemsize=2,
                      max_sets=MAX_SETS):
    """K+V bytes of one input set, and how many distinct sets one shape gets (2..max_sets).

    Enough sets that the 50 MB L2 cannot serve repeats and dispatch is amortised,
    at most ``SET_BYTES_CAP`` bytes of K+V in all (at least 2 sets).
    """
    kv_bytes = 2 * batch * kv_heads * slots * head_dim * itemsize
    return kv_bytes, int(max(2, min(max_sets, SET_BYTES_CAP // kv_bytes)))


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- correctness
def correctness(rng, quick: bool = False) -> bool:
    """Every case for the chosen launch config, the "fma" and "pvt" bodies and one split
    (only the chosen config if ``quick``), all through the stacked-buffer path."""
    cases = [  # batch, q_heads, kv_heads, head_dim, slots, dtype, mask, per_kv_head
        (3, 32, 8, 128, 1000, jnp.float32, "random", False),
        (3, 32, 8, 128, 1000, jnp.bfloat16, "random", False),
        (1, 9, 3, 64, 4096, jnp.bfloat16, "left_pad", True),
        (2, 4, 1, 128, 100, jnp.float32, "single", False),
        (8, 32, 8, 128, 2048, jnp.bfloat16, "all", True),
        (1, 8, 2, 64, 16, jnp.float32, "all", False),
        (16, 32, 8, 128, 8192, jnp.bfloat16, "random", False),
        (4, 9, 3, 64, 1024, jnp.float32, "random", False),
        # batch x kv_heads >= 528: one split per row (the headline's launch shape)
        (128, 32, 8, 128, 2048, jnp.bfloat16, "random", False),
        (128, 32, 8, 128, 1000, jnp.bfloat16, "left_pad", True),
        # many importance chunks per row: the combine's last-chunk reduction decides
        (4, 32, 8, 128, 16384, jnp.bfloat16, "all", False),
        # head_dim not a power of two (masked columns); fp32 group of 16 (the dot body)
        (2, 16, 2, 96, 1000, jnp.bfloat16, "random", False),
        (2, 32, 2, 80, 500, jnp.float32, "left_pad", True),
    ]
    ok_all = True
    f32 = lambda x: np.asarray(jnp.asarray(x, jnp.float32))  # noqa: E731
    override_sets = [dict(OVERRIDES), {"variant": "fma"}, {"variant": "pvt"}, {"num_splits": 1}]
    for overrides in override_sets[:1] if quick else override_sets:
        for b, hq, hkv, d, s, dt, mask, pkv in cases:
            try:
                qj, kj, vj, valid_j = random_decode_inputs(rng, b, hq, hkv, d, s, mask, dt)
                valid = np.asarray(valid_j)
                case_overrides = {"group": hq // hkv, **overrides}
                if dt != jnp.bfloat16:  # a bf16-only option (plan_config refuses it for fp32)
                    case_overrides.pop("v_l1_dot", None)
                cfg = triton_decode.plan_config(b, hkv, s, d, dt, **case_overrides)
                # Stacked buffer of 3 layers, the case in the middle: what the decoder passes.
                stack = lambda x: jnp.stack([jnp.roll(x, 1, axis=0), x, x[::-1]])  # noqa: E731
                fn = jax.jit(lambda q, k, v, m, cfg=cfg, pkv=pkv, d=d: triton_decode.longflow_attention_triton(
                    q, k, v, m, scale=d ** -0.5, layer=jnp.int32(1), per_kv_head=pkv, config=cfg))
                out, slot, imp = jax.block_until_ready(
                    fn(qj, stack(kj), stack(vj), stack(jnp.asarray(valid))))
                r_out, r_slot, r_imp = longflow_attention_reference(
                    f32(qj), f32(kj), f32(vj), valid, d ** -0.5, pkv)
                out = f32(out)
                rel = np.linalg.norm(out - r_out) / max(np.linalg.norm(r_out), 1e-30)
                imp = np.asarray(imp)
                imp_rel = np.abs(imp - r_imp).max() / max(np.abs(r_imp).max(), 1e-30)
                # Per slot: bf16 partials round each term once (<= 2**-8 relative).
                slot_rel = 2.0 ** -8 if cfg.partial_dtype == "bfloat16" else 0.0
                bound = slot_rel * np.abs(r_imp) + 1e-5 * np.abs(r_imp).max()
                imp_ok = bool((np.abs(imp - r_imp) <= bound).all())
                big = np.abs(r_imp) > 1e-3 * np.abs(r_imp).max()
                imp_slot = (np.abs(imp - r_imp)[big] / np.abs(r_imp)[big]).max()
                tol = 1e-5 if dt == jnp.float32 else 2e-2
                slot = np.asarray(slot)
                slot_ok = np.mean(slot == r_slot)
                # The slot must match in every decisive row (tests/kernel_checks.py's rule):
                # the two smallest keys further apart than twice the importance bound, or
                # an invalid slot present (its first invalid slot, exactly).
                mask_b = valid[:, None, :] if pkv else valid
                keys = np.sort(np.where(mask_b, r_imp, -1.0), axis=-1)
                decisive = ((keys[..., 1] - keys[..., 0] > 2 * (
                    slot_rel * np.abs(keys[..., 1]) + 1e-5 * np.abs(r_imp).max()))
                    | (keys[..., 0] < 0))
                slot_bad = int((slot != r_slot)[decisive].sum())
                good = (rel <= tol and np.isfinite(out).all() and np.isfinite(imp).all()
                        and imp_ok and slot_bad == 0)
                ok_all &= bool(good)
                log(f"check {cfg.variant} st={cfg.num_stages} bk={cfg.block_k} sp={cfg.num_splits} "
                    f"b={b} h={hq}/{hkv} "
                    f"d={d} s={s} {jnp.dtype(dt).name} {mask} pkv={pkv}: out_rel={rel:.2e} "
                    f"imp_rel={imp_rel:.2e} imp_slot_rel={imp_slot:.2e} "
                    f"({cfg.partial_dtype} partials) "
                    f"slot_match={slot_ok:.2f} (decisive rows {int(decisive.sum())}, "
                    f"{slot_bad} differ) {'PASS' if good else 'FAIL'}")
            except Exception:  # keep going: one failure must not lose the rest
                ok_all = False
                log(f"check {overrides} {b, hq, hkv, d, s} CRASH\n{traceback.format_exc()}")
    return ok_all


# ----------------------------------------------------------------------------- timing helpers
def make_sets(batch, slots, n_sets, key, q_heads=Q_HEADS, kv_heads=KV_HEADS, head_dim=HEAD_DIM,
              dtype=jnp.bfloat16):
    sets = []
    for i in range(n_sets):
        kq, kk, kvv, km = jax.random.split(jax.random.fold_in(key, i), 4)
        q = jax.random.normal(kq, (batch, q_heads, head_dim), dtype)
        k = jax.random.normal(kk, (batch, kv_heads, slots, head_dim), dtype)
        v = jax.random.normal(kvv, (batch, kv_heads, slots, head_dim), dtype)
        valid = jax.random.uniform(km, (batch, slots)) < 0.9
        sets.append((q, k, v, valid))
    return jax.block_until_ready(sets)


STACK_MIN_SETS = 8  # stack the outputs of executables over at least this many input sets
# GPU work enqueued per timed repetition (sets the calls per repetition): 0.05 s in runs
# 43-72; a repetition's fixed cost (first dispatch + final sync) was ~1.2 ms, not the assumed
# ~0.3 ms, i.e. ~28 us (2.5%) per application at 128 x 8192 (run 72; benchmarks/NOTES.md).
REP_TARGET_S = 0.2


def _jit_multi(op, n_sets: int):
    """One executable applying ``op`` to every input set (``n_sets`` of them).

    Host work per execution grows with its buffers, ~5.6 us per output buffer
    (run 30, benchmarks/launch_gaps.py): with one buffer per set and output
    (runs 1-30) it set the time of every shape under ~0.1 GB, where the GPU
    span of the same executable was 3-4x shorter.  So with many sets (small
    shapes) each output leaf is stacked over the sets (one small copy per
    leaf and executable).  With few sets (the shapes of >= 3 GB, where an
    execution is milliseconds of GPU work and its host work overlaps it) the
    outputs stay the op's own buffers: the stacking copy cost 5.9 us per
    application at 128 x 8192 (run 36), GPU work that is the harness's.
    Reusing input sets within one executable to cut the per-input work is NOT
    an option: XLA merges identical applications and the query-independent
    parts of the XLA reference (run 32, invalid).
    """
    def multi(sets):
        outs = [op(*x) for x in sets]
        if n_sets < STACK_MIN_SETS:
            return outs
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return jax.jit(multi)


def _calls_per_rep(multi, sets, target_s=None, max_calls=64) -> int:
    """Executions enqueued per repetition: enough for ``target_s`` (default
    ``REP_TARGET_S``) of work, at least 4 and at most ``max_calls``.

    A repetition's wall clock includes a fixed cost, the host dispatch of its
    first execution before the GPU starts and the final synchronisation:
    0.6-1.2 ms per repetition on the H200 (run 73, ``rep_size.py``; runs 36-37
    had guessed ~0.3 ms).  Torch's CUDA-event loop does not pay it.  With 0.2 s
    repetitions it is ~0.3-0.6% of the large shapes (0.05 s: 1-2.5%).  Shapes
    whose executions take < 3 ms (a 64-execution repetition < 0.2 s, e.g.
    8 x 2048: ~55 ms) stay below the target: they are dispatch-bound, the host
    work of each execution overlapping the previous one's GPU work.
    """
    target_s = REP_TARGET_S if target_s is None else target_s
    t0 = time.perf_counter()
    jax.block_until_ready(multi(sets))
    one = time.perf_counter() - t0
    return int(min(max_calls, max(4, -(-target_s // max(one, 1e-6)))))


def rep_seconds(multi, sets, calls: int) -> float:
    """Wall seconds of one repetition: ``calls`` executions enqueued, one block at the end."""
    t0 = time.perf_counter()
    for _ in range(calls):
        result = multi(sets)
    jax.block_until_ready(result)
    return time.perf_counter() - t0


def _rep_times(multi, sets, min_reps, budget_s, calls):
    times = []
    t_end = time.perf_counter() + budget_s
    while len(times) < min_reps or (time.perf_counter() < t_end and len(times) < 50):
        times.append(rep_seconds(multi, sets, calls) / (calls * len(sets)))
    return times


def time_jax(op, sets, min_reps=5, budget_s=0.6):
    """Median seconds per application of ``op`` over distinct input sets.

    Each repetition enqueues several executions back to back (``_calls_per_rep``:
    ~0.2 s of work, 4 to 64 executions) and blocks once, so the host's per-call
    dispatch (~0.3 ms for an executable with 4 x 32 array arguments) overlaps
    the previous call's GPU work instead of adding to it, as it does in a
    jitted decode loop.  Runs 1-5 blocked after every call, which put ~11 us
    per application on top of small shapes; runs 1-30 returned one buffer per
    set and output (see ``_jit_multi``); runs 1-42 enqueued 4 executions per
    repetition at every shape, runs 43-72 ~50 ms of work (``_calls_per_rep``).
    """
    multi = _jit_multi(op, len(sets))
    jax.block_until_ready(multi(sets))  # compile + warm up
    calls = _calls_per_rep(multi, sets)
    return statistics.median(_rep_times(multi, sets, min_reps, budget_s, calls))


def time_jax_interleaved(ops: dict, sets, rounds=4, budget_s=0.15) -> dict:
    """Like ``time_jax`` for several ops, alternating between them ``rounds`` times.

    Clock and thermal drift then hit every op alike: single back-to-back
    measurements differed by up to 25% between runs at small shapes.
    """
    multis = {name: _jit_multi(op, len(sets)) for name, op in ops.items()}
    for multi in multis.values():
        jax.block_until_ready(multi(sets))
    calls = {name: _calls_per_rep(multi, sets) for name, multi in multis.items()}
    pooled = {name: [] for name in ops}
    for _ in range(rounds):
        for name, multi in multis.items():
            pooled[name] += _rep_times(multi, sets, 3, budget_s, calls[name])
    return {name: statistics.median(t) for name, t in pooled.items()}


def time_torch(fn_list, reps=20):
    import torch
    for f in fn_list:
        f()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for f in fn_list:
            f()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) * 1e-3 / len(fn_list))
    return statistics.median(times)


def copy_bandwidth():
    import torch
    n = 4 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    t = time_torch([lambda s=src, d=dst: d.copy_(s)], reps=10)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / t


# ----------------------------------------------------------------------------- sweep
def sweep(key):
    shapes = [(128, 8192), (8, 2048), (1, 32768)]
    variants = [
        {}, {"block_k": 32}, {"block_k": 128}, {"num_warps": 8}, {"num_warps": 2},
        {"num_stages": 2}, {"num_stages": 4}, {"split_mult": 2}, {"split_mult": 0.5},
    ]
    results = []
    for batch, slots in shapes:
        kv_bytes, n_sets = kv_bytes_and_sets(batch, slots)
        sets = make_sets(batch, slots, n_sets, key)
        base = triton_decode.plan_config(batch, KV_HEADS, slots, HEAD_DIM, jnp.bfloat16)
        for var in variants:
            var = dict(var)
            mult = var.pop("split_mult", None)
            if mult is not None:
                var["num_splits"] = max(1, int(round(base.num_splits * mult)))
            try:
                cfg = triton_decode.plan_config(batch, KV_HEADS, slots, HEAD_DIM, jnp.bfloat16, **var)
                op = lambda q, k, v, m, cfg=cfg: triton_decode.longflow_attention_triton(  # noqa: E731
                    q, k, v, m, scale=HEAD_DIM ** -0.5, config=cfg)
                t = time_jax(op, sets, min_reps=5, budget_s=0.3)
                log(f"sweep b={batch} s={slots} {cfg}: {t * 1e6:.1f} us {kv_bytes / t / 1e12:.2f} TB/s")
                results.append((batch, slots, str(cfg), t))
            except Exception as err:
                log(f"sweep b={batch} s={slots} {var}: FAILED {type(err).__name__}: {str(err)[:300]}")
        del sets
    return results


# ----------------------------------------------------------------------------- ablation
# (variant, num_stages, block_k, num_warps, num_splits or None for the heuristic)
HEADLINE_TRIES = [
    ("pvt", 2, 64, 4, None),  # the default
    ("pvt", 1, 64, 4, None), ("pvt", 1, 64, 8, None), ("pvt", 1, 128, 8, None),
    ("pvt", 2, 64, 4, 3),
    ("fma", 1, 16, 4, None), ("fma", 1, 32, 4, None), ("fma", 2, 32, 4, None),
    ("fma", 3, 32, 4, None), ("fma", 1, 64, 8, None), ("fma", 2, 64, 8, None),
    ("fma", 1, 32, 8, None),
]
SMALL_TRIES = [  # batch 8 x 2048, 32/8 heads
    ("pvt", 2, 64, 4, None), ("pvt", 1, 64, 4, None), ("fma", 1, 32, 4, None),
    ("fma", 2, 32, 4, None), ("fma", 1, 64, 8, None),
]
# SmolLM2-135M attention (9 q / 3 kv heads, head_dim 64): the end-to-end model.
SMOL_SHAPES = [(8, 1024, jnp.float32), (64, 4096, jnp.float32), (64, 4096, jnp.bfloat16)]
SMOL_TRIES = [
    ("pvt", 2, None, 4, None), ("pvt", 1, None, 4, None), ("fma", 1, 32, 4, None),
    ("fma", 2, 32, 4, None), ("fma", 1, 64, 4, None), ("fma", 2, 64, 8, None),
]
OVERRIDES: dict = {}  # launch overrides chosen by the ablation, used by checks and table


def _ablate_shape(key, batch, slots, tries, *, q_heads=Q_HEADS, kv_heads=KV_HEADS,
                  head_dim=HEAD_DIM, dtype=jnp.bfloat16):
    """Kernel alone and with the combine per launch variant; returns the best."""
    itemsize = jnp.dtype(dtype).itemsize
    kv_bytes, n_sets = kv_bytes_and_sets(batch, slots, kv_heads, head_dim, itemsize)
    sets = make_sets(batch, slots, n_sets, key, q_heads, kv_heads, head_dim, dtype)
    scale = head_dim ** -0.5
    layer = jnp.zeros((1,), jnp.int32)
    best = {}
    for variant, stages, block_k, warps, splits in tries:
        tag = (f"{jnp.dtype(dtype).name} h={q_heads}/{kv_heads} d={head_dim} {variant} "
               f"st={stages} bk={block_k} w={warps} sp={splits}")
        try:
            cfg = triton_decode.plan_config(batch, kv_heads, slots, head_dim, dtype,
                                            num_stages=stages, block_k=block_k, num_warps=warps,
                                            num_splits=splits, variant=variant)
            kern = lambda q, k, v, m, cfg=cfg: triton_decode._split_partials(  # noqa: E731
                q, k[None], v[None], m[None], layer, scale=scale, cfg=cfg, interpret=False)
            t_k = time_jax(kern, sets, min_reps=5, budget_s=0.2)
            msg = f"kernel {t_k * 1e6:.1f} us {kv_bytes / t_k / 1e12:.2f} TB/s"
            op = lambda q, k, v, m, cfg=cfg: triton_decode.longflow_attention_triton(  # noqa: E731
                q, k, v, m, scale=scale, config=cfg)
            t = time_jax(op, sets, min_reps=5, budget_s=0.2)
            msg += f" | with combine {t * 1e6:.1f} us {kv_bytes / t / 1e12:.2f} TB/s"
            if splits is None and t < best.get("t", 1e9):
                best = {"t": t, "variant": variant, "num_stages": stages,
                        "block_k": block_k, "num_warps": warps}
            log(f"ablate b={batch} s={slots} {tag}: {msg} [{cfg.num_splits} splits]")
        except Exception as err:
            log(f"ablate b={batch} s={slots} {tag}: FAILED {type(err).__name__}: {str(err)[:300]}")
    del sets
    return best


def ablation(key):
    """Launch variants at the headline shape, batch 8 x 2048 and SmolLM2's attention shapes.

    The fastest exact variant at batch 128 x 8192 (with combine, heuristic split
    count) goes into OVERRIDES so the same run's checks and table use it."""
    best = _ablate_shape(key, 128, 8192, HEADLINE_TRIES)
    log(f"best at 128 x 8192: {best}")
    log(f"best at 8 x 2048: {_ablate_shape(key, 8, 2048, SMALL_TRIES)}")
    for batch, slots, dtype in SMOL_SHAPES:
        smol = _ablate_shape(key, batch, slots, SMOL_TRIES, q_heads=9, kv_heads=3, head_dim=64,
                             dtype=dtype)
        log(f"best at SmolLM2 {jnp.dtype(dtype).name} {batch} x {slots}: {smol}")
    best.pop("t", None)
    OVERRIDES.update(best)
    log(f"chosen overrides: {OVERRIDES}")


# ----------------------------------------------------------------------------- table
def table(key, out_dir, shapes=None):
    import torch
    import torch.nn.functional as F
    from jax.experimental.pallas.ops.gpu import decode_attention

    scale = HEAD_DIM ** -0.5
    def ours(q, k, v, m):
        cfg = triton_decode.plan_config(q.shape[0], KV_HEADS, k.shape[2], HEAD_DIM, q.dtype, **OVERRIDES)
        return triton_decode.longflow_attention_triton(q, k, v, m, scale=scale, config=cfg)
    xla = lambda q, k, v, m: longflow_attention_xla(q, k, v, m, scale=scale)  # noqa: E731

    def gqa_op(q, kt, vt):
        # attention only; jax's layout is [batch, slots, kv_heads, head_dim]
        return decode_attention.gqa(q, kt, vt, sm_scale=scale)

    from benchmarks.launch_gaps import gpu_span_per_app

    rows = []
    # Harness floor: one trivial XLA fusion per application, same timing method.
    floor_sets = make_sets(1, 1024, 32, key)
    floor = time_jax(lambda q, k, v, m: q * 2, floor_sets)
    log(f"harness floor (one elementwise fusion on q, b=1 x 1024 sets): {floor * 1e6:.1f} us")
    # Warm-up, discarded: in run 44 every column of the first row (torch's too) was
    # 1.2-1.9x slower than at the next shape, a cold start of the machine, not of an op.
    warm = time_jax_interleaved({"ours": ours, "xla": xla}, floor_sets, rounds=8)
    log(f"warm-up (discarded, b=1 x 1024): ours {warm['ours'] * 1e6:.1f} us, "
        f"xla {warm['xla'] * 1e6:.1f} us")
    del floor_sets
    for batch in BATCHES:
        for slots in SLOTS:
            if shapes is not None and (batch, slots) not in shapes:
                continue
            kv_bytes, n_sets = kv_bytes_and_sets(batch, slots)
            row = {"batch": batch, "slots": slots, "kv_gb": kv_bytes / 1e9}
            try:
                sets = make_sets(batch, slots, n_sets, jax.random.fold_in(key, batch * 100003 + slots))
            except Exception as err:
                log(f"b={batch} s={slots}: could not allocate: {err}")
                rows.append(row)
                continue
            try:
                row.update(time_jax_interleaved({"ours": ours, "xla": xla}, sets))
                for name, op in (("ours", ours), ("xla", xla)):
                    row[f"{name}_gpu"] = gpu_span_per_app(_jit_multi(op, n_sets), (sets,), n_sets,
                                                          out_dir)
            except Exception as err:
                log(f"b={batch} s={slots} ours/xla: FAILED {type(err).__name__}: {str(err)[:300]}")
            try:  # torch SDPA on the same buffers (zero copy)
                tsets = [tuple(torch.from_dlpack(x) for x in s[:3]) for s in sets]
                fns = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(
                    q[:, :, None, :], k, v, scale=scale, enable_gqa=True) for q, k, v in tsets]
                row["sdpa"] = time_torch(fns)
                import triton.testing
                row["sdpa_bench"] = triton.testing.do_bench(fns[0], return_mode="median") * 1e-3
                del tsets, fns
            except Exception as err:
                log(f"b={batch} s={slots} sdpa: FAILED {type(err).__name__}: {str(err)[:300]}")
            try:
                gsets = [(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)) for q, k, v, _ in sets]
                del sets
                row["gqa"] = time_jax(gqa_op, gsets)
                del gsets
            except Exception as err:
                log(f"b={batch} s={slots} gqa: FAILED {type(err).__name__}: {str(err)[:300]}")
            sets = gsets = None  # noqa: F841 (drop the device buffers before the next shape)
            torch.cuda.empty_cache()
            rows.append(row)
            log("row", {k: (f"{v * 1e6:.1f}us" if isinstance(v, float) and k not in ("kv_gb",) else v)
                        for k, v in row.items()})
    return rows


def fmt_table(rows, copy_bw):
    def cell(row, name):
        t = row.get(name)
        if t is None:
            return "fail"
        return f"{t * 1e6:.1f} us / {row['kv_gb'] * 1e9 / t / 1e12:.2f}"
    lines = [
        f"Device copy bandwidth (read+write): {copy_bw / 1e12:.2f} TB/s",
        "",
        "time per step / effective K+V bandwidth (TB/s); 32 q / 8 kv heads, head_dim 128, bf16",
        "",
        "| batch | slots | K+V GB | ours | ours, GPU span | XLA ref | XLA ref, GPU span "
        "| jax gqa (attn only) | torch SDPA (attn only) | SDPA do_bench | ours/SDPA "
        "| ours GPU/SDPA | ours/XLA | ours/XLA, GPU spans |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (f"{r['ours'] / r['sdpa']:.2f}" if "ours" in r and "sdpa" in r else "-")
        gpu_ratio = (f"{r['ours_gpu'] / r['sdpa']:.2f}" if "ours_gpu" in r and "sdpa" in r else "-")
        vs_xla = (f"{r['ours'] / r['xla']:.3f}" if "ours" in r and "xla" in r else "-")
        vs_xla_gpu = (f"{r['ours_gpu'] / r['xla_gpu']:.3f}" if "ours_gpu" in r and "xla_gpu" in r
                      else "-")
        sb = f"{r['sdpa_bench'] * 1e6:.1f} us" if "sdpa_bench" in r else "fail"
        lines.append(f"| {r['batch']} | {r['slots']} | {r['kv_gb']:.3f} | {cell(r, 'ours')} | "
                     f"{cell(r, 'ours_gpu')} | {cell(r, 'xla')} | {cell(r, 'xla_gpu')} | "
                     f"{cell(r, 'gqa')} | {cell(r, 'sdpa')} | {sb} | {ratio} | {gpu_ratio} | {vs_xla} "
                     f"| {vs_xla_gpu} |")
    return "\n".join(lines)


def main():
    global REP_TARGET_S
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--ablate", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--quick-check", action="store_true", help="checks with the chosen config only")
    ap.add_argument("--shapes", help="table rows only for these, e.g. 1x1024,8x2048")
    ap.add_argument("--label", default="", help="suffix of the table file name")
    ap.add_argument("--rep-target-s", type=float, default=REP_TARGET_S,
                    help="GPU work per timed repetition of the JAX columns (seconds)")
    ap.add_argument("--overrides", type=json.loads, default={},
                    help='plan_config overrides for the checks and the table, e.g. \'{"v_l1_dot": false}\'')
    args = ap.parse_args()
    OVERRIDES.update(args.overrides)
    REP_TARGET_S = args.rep_target_s
    import torch
    import triton
    log(f"date {datetime.datetime.now(datetime.timezone.utc).isoformat()}")
    log(f"jax {jax.__version__} devices {jax.devices()} torch {torch.__version__} triton {triton.__version__}")
    log(f"gpu {torch.cuda.get_device_name()} sms {torch.cuda.get_device_properties(0).multi_processor_count}")
    rng = np.random.default_rng(int(time.time()))
    key = jax.random.key(int(time.time()))
    t0 = time.time()
    if args.ablate:
        ablation(key)
        log(f"ablation done ({time.time() - t0:.0f}s)")
    t0 = time.time()
    if not args.skip_check:
        ok = correctness(rng, quick=args.quick_check)
        log(f"correctness {'PASS' if ok else 'FAIL'} ({time.time() - t0:.0f}s)")
    if args.sweep:
        t0 = time.time()
        sweep(key)
        log(f"sweep done ({time.time() - t0:.0f}s)")
    if args.skip_table:
        return
    bw = copy_bandwidth()
    t0 = time.time()
    shapes = None
    if args.shapes:
        shapes = {tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")}
    log(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, repetitions of {REP_TARGET_S} s")
    rows = table(key, args.out, shapes)
    md = fmt_table(rows, bw)
    log(f"table done ({time.time() - t0:.0f}s)\n")
    log(f"overrides used: {OVERRIDES}")
    log(md)
    name = f"table{'_' + args.label if args.label else ''}.md"
    with open(os.path.join(args.out, name), "w") as f:
        f.write(md + "\n")


if __name__ == "__main__":
    main()
