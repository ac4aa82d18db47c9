"""Side-by-side (interleaved) timing of launch variants of the LongFlow decode kernel (H200).

Each shape gets fresh distinct input sets; every variant is timed with
``kernel.time_jax_interleaved`` (4 rounds alternating between variants), so
clock drift hits all alike and the ratios are measured in one run.  Variants
named ``*_kernel`` time the split kernel alone (no combine).

Usage (GPU machine, repo root):
  PYTHONPATH=. python benchmarks/ab.py [--shapes 128x8192,8x2048]
  PYTHONPATH=. python benchmarks/ab.py --ncu-target ours|sdpa --shapes 128x8192
The second form runs one shape a few times for Nsight Compute to pick one launch from.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from benchmarks.kernel import (
    HEAD_DIM,
    KV_HEADS,
    Q_HEADS,
    kv_bytes_and_sets,
    log,
    make_sets,
    time_jax_interleaved,
    time_torch,
)
from pallas_kernels import triton_decode

SCALE = HEAD_DIM ** -0.5
# name -> plan_config overrides; "kernel_only" variants skip the combine.  The ablation
# bodies that runs 16-28 timed here (attention only, |v|_1 := 1, importance kept in
# registers, their "pvt_" and 32-slot forms) were removed from the kernel after
# those runs; their entries and bodies are in git at commit 517af4c.
VARIANTS = {
    "bf16_partials": {},  # the default since this change
    "f32_partials": {"partial_dtype": "float32"},  # the default of runs 1-15
    "bf16_partials_kernel": {"kernel_only": True},
    "f32_partials_kernel": {"kernel_only": True, "partial_dtype": "float32"},
    "bf16_3splits": {"num_splits": 3},
    "bf16_st3": {"num_stages": 3},
    "bf16_bk128_w8": {"block_k": 128, "num_warps": 8},
    # Split count of runs 1-16: ceil(528 / (batch * kv_heads)), at most 128.
    "old_splits": {"old_splits": True},
    "old_splits_st3": {"old_splits": True, "num_stages": 3},
    # Deeper cp.async pipelines (offline Triton 3.9 compile for sm_90, NOTES.md run 23):
    # 2 stages = ONE smem buffer, loaded after the tile's compute; CTAs/SM from registers/smem.
    "bk32_st3": {"block_k": 32, "num_stages": 3, "ctas_per_sm": 5},
    "bk32_st4": {"block_k": 32, "num_stages": 4, "ctas_per_sm": 4},
    "bk32_st5": {"block_k": 32, "num_stages": 5, "ctas_per_sm": 3},
    "bk64_st3": {"block_k": 64, "num_stages": 3, "ctas_per_sm": 3},
    "bk32_st3_w528": {"block_k": 32, "num_stages": 3},  # splits by the default 528-program wave
    "pvt_kernel": {"kernel_only": True},
    # Run 26 also timed "pvt_defer" (tile i's partials stored at the top of iteration i + 1,
    # while tile i + 1's copy is in flight; +8% at 128 x 8192, body removed since).
    "pvt": {},
    # Run 28: 32-slot tiles, splits sized for their residency (5 programs per SM).
    "pvt_bk32_kernel": {"kernel_only": True, "block_k": 32, "ctas_per_sm": 5},
    # Run 29 also timed "pvt_t" (slot-major partials [slots, group], the tile stored transposed;
    # offline compile: the store's layout conversion stays inside each warp, one bar.sync less
    # per tile): +6% at 128 x 8192, +25% at 32 x 8192; body removed since (NOTES.md).
    # Run 34: one- and two-warp programs (no cross-warp barriers in the per-tile layout
    # conversions) with 16/32-slot tiles and 2-4 cp.async buffers (offline compile: 3 stages =
    # 2 buffers, the copy of tile i + 1 in flight while tile i is computed); residency from the
    # offline compile (registers / shared memory per program).
    "w1_bk16_st2_kernel": {"kernel_only": True, "block_k": 16, "num_warps": 1, "num_stages": 2,
                           "ctas_per_sm": 10},
    "w1_bk16_st3_kernel": {"kernel_only": True, "block_k": 16, "num_warps": 1, "num_stages": 3,
                           "ctas_per_sm": 10},
    "w1_bk16_st4_kernel": {"kernel_only": True, "block_k": 16, "num_warps": 1, "num_stages": 4,
                           "ctas_per_sm": 7},
    "w1_bk16_st5_kernel": {"kernel_only": True, "block_k": 16, "num_warps": 1, "num_stages": 5,
                           "ctas_per_sm": 6},
    "w2_bk16_st3_kernel": {"kernel_only": True, "block_k": 16, "num_warps": 2, "num_stages": 3,
                           "ctas_per_sm": 8},
    "w2_bk32_st3_kernel": {"kernel_only": True, "block_k": 32, "num_warps": 2, "num_stages": 3,
                           "ctas_per_sm": 6},
    "w1_bk16_st3": {"block_k": 16, "num_warps": 1, "num_stages": 3, "ctas_per_sm": 10},
    "w1_bk16_st4": {"block_k": 16, "num_warps": 1, "num_stages": 4, "ctas_per_sm": 7},
    "w2_bk16_st3": {"block_k": 16, "num_warps": 2, "num_stages": 3, "ctas_per_sm": 8},
    "w2_bk32_st3": {"block_k": 32, "num_warps": 2, "num_stages": 3, "ctas_per_sm": 6},
    # Run 38: the combine. With one split per row the split kernel now writes the normalised
    # output itself; run 38 also timed the previous launch (the combine merging it) through a
    # KernelConfig switch, removed after the A/B showed no difference.
    "combine_264": {"combine_programs": 264},
    "combine_1056": {"combine_programs": 1056},
    "combine_2112": {"combine_programs": 2112},
    # Run 33 timed KV heads packed into the dot's 16 rows (benchmarks/packed_heads.py of commit
    # c94f5fd, removed since): +5.8% (32 slots/tile) to +51% at 128 x 8192 (NOTES.md).
}


def make_op(batch, slots, overrides):
    overrides = dict(overrides)
    kernel_only = overrides.pop("kernel_only", False)
    if overrides.pop("old_splits", False):
        overrides["num_splits"] = min(128, -(-528 // (batch * KV_HEADS)))
    ctas = overrides.pop("ctas_per_sm", None)
    if ctas is not None:  # wave-filling splits for this launch's residency
        bk = overrides["block_k"]
        overrides["num_splits"] = triton_decode._splits_by_wave_model(
            batch * KV_HEADS, -(-slots // bk), wave=ctas * 132)
    cfg = triton_decode.plan_config(batch, KV_HEADS, slots, HEAD_DIM, jnp.bfloat16,
                                    group=Q_HEADS // KV_HEADS, **overrides)
    layer = jnp.zeros((1,), jnp.int32)
    if kernel_only:
        return cfg, lambda q, k, v, m: triton_decode._split_partials(
            q, k[None], v[None], m[None], layer, scale=SCALE, cfg=cfg, interpret=False)
    return cfg, lambda q, k, v, m: triton_decode.longflow_attention_triton(
        q, k, v, m, scale=SCALE, config=cfg)


def ab(shapes, names, sdpa=False):
    """Times ``names`` interleaved at each shape; returns {(batch, slots): {name: seconds}}."""
    results = {}
    for batch, slots in shapes:
        kv_bytes, n_sets = kv_bytes_and_sets(batch, slots)
        sets = make_sets(batch, slots, n_sets, jax.random.key(batch * 7919 + slots))
        ops = {}
        for name in names:
            cfg, ops[name] = make_op(batch, slots, VARIANTS[name])
            log(f"ab b={batch} s={slots} {name}: {cfg}")
        # Same results as the first variant (full calls only; the others return partials).
        ref = jax.jit(ops[names[0]])(*sets[0])
        for name in names[1:]:
            if not VARIANTS[name].get("kernel_only") and not VARIANTS[names[0]].get("kernel_only"):
                got = jax.jit(ops[name])(*sets[0])
                rel = float(jnp.linalg.norm((got[0] - ref[0]).astype(jnp.float32))
                            / jnp.linalg.norm(ref[0].astype(jnp.float32)))
                imp = float(jnp.max(jnp.abs(got[2] - ref[2])) / jnp.max(jnp.abs(ref[2])))
                same = float(jnp.mean(got[1] == ref[1]))
                log(f"ab b={batch} s={slots} {name}: out rel diff {rel:.1e}, importance diff / max "
                    f"{imp:.1e}, same eviction slot {same:.2f} (vs {names[0]})")
        times = time_jax_interleaved(ops, sets)
        base = times[names[0]]
        for name in names:
            t = times[name]
            log(f"ab b={batch} s={slots} {name:22s} {t * 1e6:9.1f} us "
                f"{kv_bytes / t / 1e12:5.2f} TB/s"
                f"  x{t / base:.3f} vs {names[0]}")
        if sdpa:
            import torch
            import torch.nn.functional as F
            import triton.testing
            tsets = [tuple(torch.from_dlpack(x) for x in s[:3]) for s in sets]
            fns = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(
                q[:, :, None, :], k, v, scale=SCALE, enable_gqa=True) for q, k, v in tsets]
            t_loop = time_torch(fns)
            t_bench = triton.testing.do_bench(fns[0], return_mode="median") * 1e-3
            log(f"ab b={batch} s={slots} {'torch SDPA loop':22s} {t_loop * 1e6:9.1f} us "
                f"{kv_bytes / t_loop / 1e12:5.2f} TB/s  x{t_loop / base:.3f} vs {names[0]}; "
                f"do_bench {t_bench * 1e6:.1f} us")
            del tsets, fns
        del sets
        results[(batch, slots)] = times
    return results


def ncu_target(which, batch, slots, variant=None, calls=3):
    """A few calls of one op on one input set: Nsight Compute picks the launch to profile.

    ``variant`` (a VARIANTS name) picks the launch for ``which == "ours"``; None = defaults.
    """
    (q, k, v, m), = make_sets(batch, slots, 1, jax.random.key(1))
    if which == "ours":
        fn = jax.jit(make_op(batch, slots, VARIANTS[variant] if variant else {})[1])
        for _ in range(calls):
            jax.block_until_ready(fn(q, k, v, m))
    else:
        import torch
        import torch.nn.functional as F
        tq, tk, tv = (torch.from_dlpack(x) for x in (q, k, v))
        for _ in range(calls):
            F.scaled_dot_product_attention(tq[:, :, None, :], tk, tv, scale=SCALE, enable_gqa=True)
        torch.cuda.synchronize()
    log(f"ncu target {which} b={batch} s={slots}: {calls} calls done")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="128x8192,32x8192,8x2048,1x8192")
    ap.add_argument("--variants", default=None,
                    help="comma-separated VARIANTS names to A/B (default: all); with "
                         "--ncu-target ours, the first one is profiled (default: plan_config's)")
    ap.add_argument("--ncu-target", choices=("ours", "sdpa"))
    ap.add_argument("--sdpa", action="store_true", help="also time torch SDPA per shape")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.ncu_target:
        variant = args.variants.split(",")[0] if args.variants else None
        ncu_target(args.ncu_target, *shapes[0], variant=variant)
        return
    ab(shapes, args.variants.split(",") if args.variants else list(VARIANTS), sdpa=args.sdpa)


if __name__ == "__main__":
    main()
