"""LongFlow decode kernels (Pallas interpret mode on CPU) vs the float64 reference.

The acceptance grid (batch x heads x head_dim x slots x mask x dtype) is
covered pairwise, not as a full cross-product, to keep interpret mode within
the CI budget: every pair of values of any two parameters appears in some case.
Inputs are fresh random normals (never zeros).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kernel_checks import check_against_reference
from kernel_checks import f32 as _f32

from pallas_kernels import api, mosaic_decode, triton_decode
from pallas_kernels.api import longflow_decode_attention
from pallas_kernels.reference import longflow_attention_reference
from pallas_kernels.reference import random_decode_inputs as make_inputs
from pallas_kernels.xla import longflow_attention_xla

GRID = {
    "batch": (1, 3, 8),
    "heads": ((1, 1), (4, 1), (8, 2), (32, 8), (9, 3)),
    "head_dim": (64, 128),
    "slots": (16, 100, 1024, 4096),
    "mask": ("all", "random", "single", "left_pad"),
    "dtype": ("float32", "bfloat16"),
    "per_kv_head": (False, True),
}
def _cost(case):
    heads, _ = case["heads"]
    return case["batch"] * heads * case["slots"]


def pairwise_cases(grid, seed=0):
    """Greedy all-pairs covering of ``grid``; prefers cheap cases on ties."""
    names = list(grid)
    uncovered = {((a, va), (b, vb)) for a, b in itertools.combinations(names, 2)
                 for va in grid[a] for vb in grid[b]}
    rng = np.random.default_rng(seed)
    cases = []
    while uncovered:
        best, best_score = None, None
        for _ in range(60):
            cand = {n: grid[n][rng.integers(len(grid[n]))] for n in names}
            # Seed the candidate with one uncovered pair so progress is guaranteed.
            (a, va), (b, vb) = sorted(uncovered, key=repr)[rng.integers(len(uncovered))]
            cand[a], cand[b] = va, vb
            covered = sum(((x, cand[x]), (y, cand[y])) in uncovered
                          for x, y in itertools.combinations(names, 2))
            score = (covered, -_cost(cand))
            if best_score is None or score > best_score:
                best, best_score = cand, score
        cases.append(best)
        uncovered -= {((x, best[x]), (y, best[y])) for x, y in itertools.combinations(names, 2)}
    return cases


CASES = pairwise_cases(GRID)


def _case_id(c):
    hq, hkv = c["heads"]
    return (f"b{c['batch']}-h{hq}x{hkv}-d{c['head_dim']}-s{c['slots']}-{c['mask']}-"
            f"{c['dtype']}-{'pkv' if c['per_kv_head'] else 'seq'}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_triton_kernel_matches_reference(case, rng):
    hq, hkv = case["heads"]
    dtype = case["dtype"]
    q, k, v, valid = make_inputs(rng, case["batch"], hq, hkv, case["head_dim"], case["slots"],
                                 case["mask"], dtype)
    scale = case["head_dim"] ** -0.5
    result = triton_decode.longflow_attention_triton(
        q, k, v, valid, scale=scale, per_kv_head=case["per_kv_head"], interpret=True)
    check_against_reference(result, q, k, v, valid, scale, case["per_kv_head"], dtype)


@pytest.mark.parametrize("heads,head_dim,dtype,per_kv_head", [
    ((9, 3), 80, "float32", False),    # "fma" body, masked columns (80 -> 128)
    ((8, 2), 96, "bfloat16", True),    # "pvt" body, masked columns (96 -> 128)
    ((32, 2), 64, "float32", False),   # fp32 group of 16 > 8: the dot body with fp32 dots
])
def test_triton_kernel_off_grid_shapes(heads, head_dim, dtype, per_kv_head, rng):
    """Shapes outside the acceptance grid that take other code paths: head_dim padded to a
    power of two inside the kernel, and a large fp32 query group."""
    (hq, hkv), slots = heads, 200
    q, k, v, valid = make_inputs(rng, 2, hq, hkv, head_dim, slots, "random", dtype)
    cfg = triton_decode.plan_config(2, hkv, slots, head_dim, jnp.dtype(dtype), group=hq // hkv)
    assert cfg.variant == ("fma" if hq // hkv <= 8 and dtype == "float32" else "pvt")
    result = triton_decode.longflow_attention_triton(
        q, k, v, valid, scale=head_dim ** -0.5, per_kv_head=per_kv_head, interpret=True)
    check_against_reference(result, q, k, v, valid, head_dim ** -0.5, per_kv_head, dtype)


@pytest.mark.parametrize("variant,dtype", [("pvt", "float32"), ("fma", "bfloat16")])
def test_exact_kernel_variants(variant, dtype, rng):
    """Each body with the dtype it is not the default for (fp32 "fma", bf16 "pvt") stays correct."""
    q, k, v, valid = make_inputs(rng, 2, 9, 3, 64, 100, "random", dtype)
    cfg = triton_decode.plan_config(2, 3, 100, 64, jnp.dtype(dtype), variant=variant, num_splits=2)
    result = triton_decode.longflow_attention_triton(q, k, v, valid, scale=0.125, interpret=True,
                                                     config=cfg)
    check_against_reference(result, q, k, v, valid, 0.125, False, dtype)


@pytest.mark.parametrize("row_loop", [False, True])
@pytest.mark.parametrize("per_kv_head", [False, True])
def test_combine_step_size_is_a_launch_choice_only(per_kv_head, row_loop, rng, monkeypatch):
    """A smaller importance step (more, shorter steps and chunks) gives the reference's results,
    with either row-sum method."""
    from pallas_kernels import triton_combine
    plans, plan_combine = [], triton_combine.plan_combine
    monkeypatch.setattr(triton_combine, "plan_combine",
                        lambda *a, **kw: plans.append(plan_combine(*a, **kw)) or plans[-1])
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 1000, "random", "float32")
    cfg = triton_decode.plan_config(2, 2, 1000, 64, jnp.float32, combine_step_elems=256,
                                    combine_warps=8, combine_row_loop=row_loop)
    result = triton_decode.longflow_attention_triton(q, k, v, valid, scale=0.125,
                                                     per_kv_head=per_kv_head, interpret=True, config=cfg)
    (plan,) = plans
    default = plan_combine(2, 2 if per_kv_head else 1, 4 if per_kv_head else 8, 4, -(-1000 // cfg.block_k),
                           cfg.block_k, 64, row_loop=row_loop)
    assert plan.tiles_per_step < default.tiles_per_step  # the knob reached the combine
    assert plan.row_loop is default.row_loop is row_loop
    check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, "float32")


@pytest.mark.parametrize("dtype,heads,mask,per_kv_head,splits", [
    ("bfloat16", (8, 2), "random", False, 1), ("float32", (9, 3), "left_pad", True, 3),
    ("bfloat16", (9, 3), "single", False, 2), ("float32", (4, 1), "all", True, 1),
])
def test_combine_row_loop_matches_reference(dtype, heads, mask, per_kv_head, splits, rng,
                                            monkeypatch):
    """The row-loop importance sum (one load per query-head row, run 72) against the float64
    reference, in chunks of several steps and several chunks per row: rows not a power of two,
    per-KV-head rows, one split and several."""
    from pallas_kernels import triton_combine
    plans, plan_combine = [], triton_combine.plan_combine
    monkeypatch.setattr(triton_combine, "plan_combine",
                        lambda *a, **kw: plans.append(plan_combine(*a, **kw)) or plans[-1])
    (hq, hkv), slots, d = heads, 700, 64
    q, k, v, valid = make_inputs(rng, 3, hq, hkv, d, slots, mask, dtype)
    cfg = triton_decode.plan_config(3, hkv, slots, d, jnp.dtype(dtype), num_splits=splits,
                                    combine_row_loop=True, combine_step_elems=256,
                                    combine_programs=3 * (hkv if per_kv_head else 1) * 2)
    result = triton_decode.longflow_attention_triton(
        q, k, v, valid, scale=0.125, per_kv_head=per_kv_head, interpret=True, config=cfg)
    (plan,) = plans
    assert plan.row_loop and plan.num_chunks >= 2 and plan.steps_per_chunk >= 2, plan
    check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, dtype)


def test_combine_row_loop_arguments_are_checked():
    """Forcing the row loop past its unroll limit, or a bad step size, is refused by name."""
    from pallas_kernels import triton_combine
    with pytest.raises(ValueError, match="combine_row_loop=True unrolls .* at most 64 rows, got 128"):
        triton_combine.plan_combine(2, 1, 128, 16, 16, 64, 128, row_loop=True)
    assert not triton_combine.plan_combine(128, 1, 32, 4, 128, 64, 128).row_loop  # the default
    with pytest.raises(ValueError, match="combine_row_loop must be None, True or False"):
        triton_combine.plan_combine(2, 1, 32, 4, 16, 64, 128, row_loop="no")
    with pytest.raises(ValueError, match="combine_step_elems must be a power of two >= 256"):
        triton_combine.plan_combine(2, 1, 32, 4, 16, 64, 128, step_elems=0)


def _split_kernel_dots(q, k, v, valid, cfg) -> int:
    """dot_general equations in the split kernel's body (nested jaxprs searched)."""
    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            n += eqn.primitive.name == "dot_general"
            for param in eqn.params.values():
                sub = getattr(param, "jaxpr", param)  # ClosedJaxpr -> Jaxpr
                if isinstance(sub, jax.extend.core.Jaxpr):
                    n += count(sub)
        return n
    closed = jax.make_jaxpr(lambda q, k, v, m: triton_decode._split_partials(
        q, k[None], v[None], m[None], jnp.zeros((1,), jnp.int32), scale=0.1, cfg=cfg,
        interpret=True))(q, k, v, valid)
    return count(closed.jaxpr)


@pytest.mark.parametrize("heads,head_dim,mask,per_kv_head,splits", [
    ((8, 2), 64, "random", False, None), ((9, 3), 80, "left_pad", True, 2),
])
def test_v_l1_dot_matches_the_elementwise_sum(heads, head_dim, mask, per_kv_head, splits, rng):
    """KernelConfig.v_l1_dot (||v||_1 as a tensor-core dot, bf16 only) gives the reference's
    results and the elementwise sum's importance to fp32 rounding; fp32 or "fma" is refused."""
    (hq, hkv), slots = heads, 300
    q, k, v, valid = make_inputs(rng, 2, hq, hkv, head_dim, slots, mask, "bfloat16")
    results = []
    for dot in (False, True):
        cfg = triton_decode.plan_config(2, hkv, slots, head_dim, jnp.bfloat16, group=hq // hkv,
                                        num_splits=splits, v_l1_dot=dot)
        results.append(triton_decode.longflow_attention_triton(
            q, k, v, valid, scale=0.1, per_kv_head=per_kv_head, interpret=True, config=cfg))
    check_against_reference(results[1], q, k, v, valid, 0.1, per_kv_head, "bfloat16")
    np.testing.assert_allclose(np.asarray(results[1][2]), np.asarray(results[0][2]), rtol=1e-6)
    assert np.asarray(results[1][1]).tolist() == np.asarray(results[0][1]).tolist()
    # The default (None): on for bf16 "pvt" (run 77), off for fp32 and for the "fma" body; the
    # flag reaches the kernel (its results equal the sum's, so count the split kernel's dots).
    default_cfg = triton_decode.plan_config(2, hkv, slots, head_dim, jnp.bfloat16)
    assert default_cfg.v_l1_dot is True
    assert [_split_kernel_dots(q, k, v, valid, dataclasses.replace(default_cfg, v_l1_dot=dot))
            for dot in (False, True)] == [2, 3]
    assert triton_decode.plan_config(2, hkv, slots, head_dim, jnp.float32,
                                     variant="pvt").v_l1_dot is False
    assert triton_decode.plan_config(2, hkv, slots, head_dim, jnp.bfloat16,
                                     variant="fma").v_l1_dot is False
    with pytest.raises(ValueError, match="v_l1_dot needs the \"pvt\" body and bfloat16"):
        triton_decode.plan_config(2, hkv, slots, head_dim, jnp.float32, v_l1_dot=True)
    with pytest.raises(ValueError, match="v_l1_dot needs the \"pvt\" body and bfloat16"):
        triton_decode.plan_config(2, hkv, slots, head_dim, jnp.bfloat16, variant="fma",
                                  v_l1_dot=True)
    bf16_cfg = triton_decode.plan_config(2, hkv, slots, head_dim, jnp.bfloat16, v_l1_dot=True)
    with pytest.raises(ValueError, match="config.v_l1_dot needs"):
        triton_decode.longflow_attention_triton(q.astype(jnp.float32), k.astype(jnp.float32),
                                                v.astype(jnp.float32), valid, scale=0.1,
                                                interpret=True, config=bf16_cfg)


@pytest.mark.parametrize("partial_dtype", ["float32", "bfloat16"])
def test_bf16_importance_partials_precision(partial_dtype, rng):
    """bf16 inputs store bf16 partials by default (the 5% traffic budget); fp32 partials on
    request are exact to fp32 rounding, bf16 ones within 2**-8 per slot, never exact."""
    assert triton_decode.plan_config(2, 2, 1000, 64, jnp.bfloat16).partial_dtype == "bfloat16"
    assert triton_decode.plan_config(2, 2, 1000, 64, jnp.float32).partial_dtype == "float32"
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 1000, "random", "bfloat16")
    cfg = triton_decode.plan_config(2, 2, 1000, 64, jnp.bfloat16, partial_dtype=partial_dtype)
    result = triton_decode.longflow_attention_triton(q, k, v, valid, scale=0.125, interpret=True,
                                                     config=cfg)
    exact = partial_dtype == "float32"
    check_against_reference(result, q, k, v, valid, 0.125, False, "bfloat16",
                            imp_rel=0.0 if exact else None)
    r_imp = longflow_attention_reference(_f32(q), _f32(k), _f32(v), np.asarray(valid), 0.125,
                                         False)[2]
    rel = np.abs(np.asarray(result[2]) - r_imp)[np.asarray(valid)] / r_imp[np.asarray(valid)]
    assert (rel.max() < 1e-5) == exact, rel.max()  # the bf16 rounding is really there
    with pytest.raises(ValueError, match="partial_dtype must be one of"):
        triton_decode.plan_config(2, 2, 1000, 64, jnp.bfloat16, partial_dtype="float16")


def test_split_count_fills_whole_waves(rng):
    """Default split counts: whole waves of 528 resident programs (4 per SM x 132), and no
    one-tile programs just to fill a ragged wave."""
    wave = 4 * 132
    # (batch, slots) -> splits at 8 KV heads, head_dim 128, bf16 (64-slot tiles).  The first
    # rows were measured (run 17: 9 splits at batch 8 = 1.09 waves was 21% slower than 8);
    # the last ones once got 16-32 one-tile splits from a "fill the wave to 95%" rule.
    expected = {(1, 8192): 64, (8, 8192): 8, (8, 2048): 8, (32, 2048): 2, (128, 8192): 1,
                (62, 2048): 1, (31, 4096): 2, (17, 1024): 3, (12, 1024): 4}
    for (batch, slots), splits in expected.items():
        cfg = triton_decode.plan_config(batch, 8, slots, 128, jnp.bfloat16)
        assert cfg.num_splits == splits, (batch, slots, cfg.num_splits)
    for _ in range(200):
        batch, kv_heads, slots = (int(x) for x in rng.integers(1, [200, 17, 40000]))
        cfg = triton_decode.plan_config(batch, kv_heads, slots, 128, jnp.bfloat16)
        num_blocks = -(-slots // cfg.block_k)
        bps = cfg.blocks_per_split
        assert 1 <= cfg.num_splits <= 128 and (cfg.num_splits - 1) * bps < num_blocks <= \
            cfg.num_splits * bps
        # One-tile programs only where even one tile per program fits in one wave.
        if bps == 1 and num_blocks > 1:
            assert batch * kv_heads * num_blocks <= wave, (batch, kv_heads, slots)


def test_combine_chunk_counts(rng):
    """The combine's chunk counts (32/8 heads, head_dim 128, bf16, importance summed over heads):
    the launches measured best in runs 43, 82 and 85-89 (8 chunks = one round of 1056 resident
    2-warp programs at 128 x 8192, one-step chunks at 8 x 2048, steps of 2048 partials; the
    default row sum is the axis sum, run 80) and the row loop's plans, and every chunk of any plan
    has tiles."""
    from pallas_kernels import triton_combine
    expected = {  # (chunks, steps per chunk, row loop): default (axis) plan, row-loop plan
        (128, 8192): ((8, 16, False), (8, 2, True)), (8, 2048): ((32, 1, False), (4, 1, True)),
        (128, 1024): ((8, 2, False), (2, 1, True)),
        (32, 8192): ((32, 4, False), (16, 1, True)), (1, 1024): ((16, 1, False), (2, 1, True))}
    for (batch, slots), (axis, rows) in expected.items():
        cfg = triton_decode.plan_config(batch, 8, slots, 128, jnp.bfloat16)
        for row_loop, want in ((None, axis), (False, axis), (True, rows)):
            plan = triton_combine.plan_combine(batch, 1, 32, 4, -(-slots // cfg.block_k),
                                               cfg.block_k, 128, row_loop=row_loop)
            assert (plan.num_chunks, plan.steps_per_chunk, plan.row_loop) == want, \
                (batch, slots, plan)
    for _ in range(200):
        batch, tiles = (int(x) for x in rng.integers(1, [300, 600]))
        plan = triton_combine.plan_combine(batch, 1, 32, 4, tiles, 64, 128,
                                           row_loop=[None, True, False][int(rng.integers(3))])
        steps = -(-tiles // plan.tiles_per_step)
        assert 1 <= plan.num_chunks <= 128
        assert (plan.num_chunks - 1) * plan.steps_per_chunk < steps <= \
            plan.num_chunks * plan.steps_per_chunk  # every chunk has work


def test_triton_config_and_plan_arguments_are_checked(rng):
    """A launch config that does not cover the slots, an unknown body or out-of-range
    plan_config overrides raise ValueError before any kernel runs (never a wrong result)."""
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 100, "random", "float32")
    run = functools.partial(triton_decode.longflow_attention_triton, q, k, v, valid,
                            scale=0.125, interpret=True)
    with pytest.raises(ValueError, match="config covers 16 slots"):
        run(config=triton_decode.plan_config(2, 2, 16, 64, jnp.float32))
    good = triton_decode.plan_config(2, 2, 100, 64, jnp.float32)
    with pytest.raises(ValueError, match="config.variant must be one of"):
        run(config=dataclasses.replace(good, variant="attn_only"))
    with pytest.raises(ValueError, match="config.combine_row_loop must be None"):
        run(config=dataclasses.replace(good, combine_row_loop=1))
    assert triton_decode.plan_config(2, 2, 100, 64, jnp.float32,
                                     combine_row_loop=np.True_).combine_row_loop is True
    with pytest.raises(TypeError, match="config must be a KernelConfig"):
        run(config={"num_splits": 1})
    with pytest.raises(ValueError, match="scale must be a positive finite"):
        triton_decode.longflow_attention_triton(q, k, v, valid, scale="0.1", interpret=True)
    bad = [({"slots": 0}, "slots must be a positive integer"),
           ({"head_dim": 512}, "head_dim must be in"),
           ({"block_k": 3}, "block_k must be a power of two"),
           ({"num_splits": 0}, "num_splits must be a positive integer"),
           ({"num_warps": 3}, "num_warps must be a power of two"),
           ({"num_stages": 0}, "num_stages must be a positive integer"),
           ({"variant": "attn_only"}, "variant must be one of"),
           ({"combine_warps": 3}, "combine_warps must be a power of two"),
           ({"combine_step_elems": 1000}, "combine_step_elems must be a power of two >= 256"),
           ({"combine_row_loop": "yes"}, "combine_row_loop must be None, True or False"),
           ({"v_l1_dot": "yes"}, "v_l1_dot must be None, True or False"),
           ({"dtype": jnp.float16}, "dtype must be one of"),
           ({"dtype": "bogus"}, "dtype must be one of .* got 'bogus'"),
           ({"dtype": jnp.int32}, "dtype must be one of .* got int32$")]
    for override, message in bad:
        args = {"batch": 2, "kv_heads": 2, "slots": 100, "head_dim": 64,
                "dtype": jnp.float32} | override
        with pytest.raises(ValueError, match=message):
            triton_decode.plan_config(**args)


def test_traced_negative_layer_is_clamped_alike(rng):
    """Every impl clamps a traced out-of-range layer to [0, layers): -1 reads layer 0."""
    per_layer = [make_inputs(rng, 2, 8, 2, 64, 40, "random", "float32") for _ in range(3)]
    k_all, v_all, valid_all = (jnp.stack([x[i] for x in per_layer]) for i in (1, 2, 3))
    q = per_layer[0][0]
    for impl in ["xla", "triton", "mosaic"]:
        fn = jax.jit(lambda layer, impl=impl: longflow_decode_attention(
            q, k_all, v_all, valid_all, scale=0.125, layer=layer, impl=impl, interpret=True,
            return_importance=True))
        for layer, expect in ((-1, 0), (-5, 0), (9, 2)):
            _, k, v, valid = per_layer[expect]
            check_against_reference(fn(jnp.int32(layer)), q, k, v, valid, 0.125, False,
                                    "float32")


def test_api_flags_must_be_bool():
    q, k, v, valid = _good()
    for flag in ("per_kv_head", "return_importance", "interpret"):
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            longflow_decode_attention(q, k, v, valid, scale=0.125, **{flag: "yes"})


@pytest.fixture
def many_chunks(monkeypatch):
    """Makes the combine split every row into several importance chunks (small steps).

    Returns the list of ``(num_tiles, plan)`` the combine plans with while the test runs."""
    from pallas_kernels import triton_combine
    monkeypatch.setattr(triton_combine, "_MAX_STEP_SLOTS", 64)
    plans = []
    plan_combine = triton_combine.plan_combine

    def recording(batch, outputs, rows, group, num_tiles, *args, **kwargs):
        plan = plan_combine(batch, outputs, rows, group, num_tiles, *args, **kwargs)
        plans.append((num_tiles, plan))
        return plan

    monkeypatch.setattr(triton_combine, "plan_combine", recording)
    return plans


@pytest.mark.parametrize("dtype,heads,mask,per_kv_head", [
    ("bfloat16", (8, 2), "random", False), ("float32", (9, 3), "left_pad", True),
    # all slots valid: the minimum is decisive and may sit in any chunk of any KV head's row
    ("float32", (8, 2), "all", False), ("bfloat16", (9, 3), "all", True),
])
def test_multi_chunk_combine_matches_reference(many_chunks, dtype, heads, mask, per_kv_head):
    """Rows merged in several chunks: the last chunk program to finish picks the slot."""
    rng = np.random.default_rng(sum(heads) * 7 + per_kv_head)
    (hq, hkv), slots = heads, 300
    q, k, v, valid = make_inputs(rng, 3, hq, hkv, 64, slots, mask, dtype)
    result = triton_decode.longflow_attention_triton(q, k, v, valid, scale=0.125,
                                                     per_kv_head=per_kv_head, interpret=True)
    assert many_chunks and all(plan.num_chunks > 1 for _, plan in many_chunks)
    check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, dtype)


def test_combine_chunks_skip_the_split_kernels_padding_tiles(many_chunks, rng):
    """4 splits of 3 tiles of 32 slots over 300 slots: the split kernel's last two tiles are
    padding only; the combine plans its chunks over the 10 tiles that hold slots."""
    q, k, v, valid = make_inputs(rng, 3, 8, 2, 64, 300, "random", "float32")
    cfg = triton_decode.plan_config(3, 2, 300, 64, jnp.float32, num_splits=4, block_k=32)
    assert cfg.num_splits * cfg.blocks_per_split == 12
    result = triton_decode.longflow_attention_triton(q, k, v, valid, scale=0.125,
                                                     interpret=True, config=cfg)
    (num_tiles, plan), = many_chunks
    assert num_tiles == 10 and plan.num_chunks > 1
    last_chunk_start = (plan.num_chunks - 1) * plan.steps_per_chunk * plan.tiles_per_step * 32
    assert last_chunk_start < 300
    check_against_reference(result, q, k, v, valid, 0.125, False, "float32")


def tied_inputs(rng, batch, kv_heads, slots, d):
    """fp32 q [batch, 4, d] and K/V whose slots of one KV head are all equal (exact key ties)."""
    q = jnp.asarray(rng.standard_normal((batch, 4, d)), jnp.float32)
    k, v = (jnp.broadcast_to(jnp.asarray(rng.standard_normal((batch, kv_heads, 1, d)), jnp.float32),
                             (batch, kv_heads, slots, d)) for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("per_kv_head", [False, True])
def test_multi_chunk_ties_go_to_the_lowest_slot(many_chunks, per_kv_head):
    """Equal keys in several chunks: the lowest slot wins, as in xla.select_eviction_slot."""
    rng = np.random.default_rng(11)
    batch, kv_heads, slots, d = 2, 2, 300, 64
    q, k, v = tied_inputs(rng, batch, kv_heads, slots, d)  # valid slots of a KV head tie exactly
    valid = np.ones((batch, slots), bool)
    valid[1, [170, 290]] = False  # row 1: two empty slots in later chunks rank first
    cfg = triton_decode.plan_config(batch, kv_heads, slots, d, jnp.float32)
    rows = 2 if per_kv_head else 4
    from pallas_kernels import triton_combine
    plan = triton_combine.plan_combine(batch, kv_heads if per_kv_head else 1, rows, 2,
                                       -(-slots // cfg.block_k), cfg.block_k, d)
    assert plan.num_chunks > 2
    _, slot, imp = triton_decode.longflow_attention_triton(
        q, k, v, jnp.asarray(valid), scale=0.125, per_kv_head=per_kv_head, interpret=True)
    imp = np.asarray(imp)
    assert np.all(imp[0] == imp[0][..., :1]) and imp[0].min() > 0  # exact ties decide
    expected = [[0, 0], [170, 170]] if per_kv_head else [0, 170]
    assert np.asarray(slot).tolist() == expected


def test_default_kernel_body_per_dtype():
    assert triton_decode.plan_config(8, 8, 2048, 128, jnp.bfloat16).variant == "pvt"
    assert triton_decode.plan_config(8, 3, 1024, 64, jnp.float32).variant == "fma"


@pytest.mark.parametrize("impl", ["xla", "triton", "mosaic"])
@pytest.mark.parametrize("dtype,per_kv_head", [("float32", False), ("bfloat16", True)])
def test_stacked_buffer_reads_the_given_layer(impl, dtype, per_kv_head, rng):
    """``layer=``: each layer of a stacked [layers, ...] buffer gives that layer's result.

    fp32 runs the Triton "fma" body with the shared combine, bf16 the "pvt"
    body with the per-KV-head combine.
    """
    per_layer = [make_inputs(rng, 2, 8, 2, 64, 100, mask, dtype)
                 for mask in ("random", "left_pad", "all")]
    k_all, v_all, valid_all = (jnp.stack([x[i] for x in per_layer]) for i in (1, 2, 3))
    fn = jax.jit(lambda q, layer: longflow_decode_attention(
        q, k_all, v_all, valid_all, scale=0.125, layer=layer, impl=impl, per_kv_head=per_kv_head,
        return_importance=True, interpret=True))
    imp_rel = None if impl == "triton" else 0.0  # only Triton stores bf16 partials
    for layer, (q, k, v, valid) in enumerate(per_layer):
        result = fn(q, jnp.int32(layer))  # traced layer index: one compile for all layers
        check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, dtype, imp_rel)
    # A traced out-of-range index is clamped (lax.dynamic_slice semantics): the last layer.
    q, k, v, valid = per_layer[-1]
    check_against_reference(fn(q, jnp.int32(7)), q, k, v, valid, 0.125, per_kv_head, dtype,
                            imp_rel)


def test_stacked_buffer_checks_v_dtype_and_variant_names():
    q, k, v, _ = _good()
    k3, v3 = jnp.stack([k] * 3), jnp.stack([v] * 3).astype(jnp.bfloat16)
    with pytest.raises(ValueError, match="k and v must have q's dtype"):
        longflow_decode_attention(q, k3, v3, jnp.ones((3, 2, 16), bool), scale=0.125, layer=1)
    with pytest.raises(ValueError, match="variant must be one of"):
        triton_decode.plan_config(2, 2, 16, 64, jnp.float32, variant="fmaa")
    # Large query groups keep the dot body even in fp32 ("fma" unrolls per head).
    assert triton_decode.plan_config(2, 1, 16, 64, jnp.float32, group=32).variant == "pvt"


def test_row_without_valid_slot_gives_zeros_not_nan(rng):
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 100, "random", "bfloat16")
    valid = valid.at[1].set(False)
    out, slot, imp = longflow_decode_attention(q, k, v, valid, scale=0.125, impl="triton",
                                               return_importance=True, interpret=True)
    assert np.isfinite(_f32(out)).all()
    assert (_f32(out[1]) == 0).all() and (np.asarray(imp[1]) == 0).all() and int(slot[1]) == 0
    check_against_reference((out, slot, imp), q, k, v, valid, 0.125, False, "bfloat16")


def test_invalid_slots_are_evicted_before_valid_ones(rng):
    q, k, v, valid = make_inputs(rng, 3, 4, 1, 64, 100, "left_pad", "float32")
    valid = valid.at[:, 37].set(False)
    _, slot = longflow_decode_attention(q, k, v, valid, scale=0.125, impl="triton", interpret=True)
    assert not np.asarray(valid)[np.arange(3), np.asarray(slot)].any()


@pytest.mark.parametrize("impl", ["xla", "triton"])
@pytest.mark.parametrize("per_kv_head", [False, True])
def test_empty_slot_is_evicted_before_a_lower_zero_importance_slot(impl, per_kv_head, rng):
    """A valid slot whose V is all zeros has importance exactly 0, as an invalid slot does; the
    invalid slot still goes first (reference rule: invalid key -1 < every importance), even at a
    higher index than the zero-importance one."""
    q, k, v, valid = make_inputs(rng, 3, 8, 2, 64, 100, "all", "float32")
    v = v.at[:, :, 5].set(0.0)  # slot 5: attended, but contributes nothing
    valid = valid.at[:, [40, 77]].set(False)
    result = longflow_decode_attention(q, k, v, valid, scale=0.125, impl=impl, per_kv_head=per_kv_head,
                                       return_importance=True, interpret=True)
    _, slot, imp = result
    assert (np.asarray(imp)[..., 5] == 0).all() and (np.asarray(imp)[..., 4] > 0).all()
    assert (np.asarray(slot) == 40).all(), np.asarray(slot)
    check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, "float32")


def test_api_impls_agree_and_jit(rng):
    q, k, v, valid = make_inputs(rng, 3, 8, 2, 64, 100, "random", "float32")
    fn = jax.jit(lambda *a, impl: longflow_decode_attention(
        *a, scale=0.125, impl=impl, per_kv_head=True, return_importance=True, interpret=True),
        static_argnames="impl")
    ref = fn(q, k, v, valid, impl="xla")
    for impl in ("auto", "triton"):
        out, slot, imp = fn(q, k, v, valid, impl=impl)
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref[0]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(imp), np.asarray(ref[2]), rtol=1e-5, atol=1e-9)
        assert slot.shape == (3, 2)
    two = longflow_decode_attention(q, k, v, valid, scale=0.125)
    assert len(two) == 2 and two[1].shape == (3,)


def test_every_impl_differentiates_as_the_xla_path(rng):
    """jax.grad through the kernels (which define no derivative rules) gives the XLA path's
    gradient, eager and under jit, w.r.t. q, k and v, with a traced layer."""
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 40, "random", "float32")
    k2, v2, valid2 = (jnp.stack([x, jnp.roll(x, 1, axis=0)]) for x in (k, v, valid))
    w = jnp.asarray(rng.standard_normal(q.shape), jnp.float32)  # a non-trivial cotangent

    def loss(q, k, v, layer, impl):
        out, _, imp = longflow_decode_attention(q, k, v, valid2, scale=0.125, layer=layer,
                                                impl=impl, return_importance=True,
                                                interpret=True)
        return jnp.sum(out * w) + jnp.sum(imp)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    want = grad(q, k2, v2, 1, "xla")
    # The XLA gradient against central differences along a random direction of (q, k, v).
    dirs = [jnp.asarray(rng.standard_normal(x.shape), jnp.float32) for x in (q, k2, v2)]
    eps = 1e-2
    step = [loss(*(x + sign * eps * d for x, d in zip((q, k2, v2), dirs)), 1, "xla")
            for sign in (1, -1)]
    numeric = float(step[0] - step[1]) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(want, dirs))
    assert abs(analytic) > 1e-3 and abs(numeric - analytic) <= 2e-2 * abs(analytic), (numeric, analytic)
    for impl in ("triton", "mosaic", "auto"):
        for fn in (grad, jax.jit(grad, static_argnums=4)):
            got = fn(q, k2, v2, jnp.int32(1), impl)
            for g, ref in zip(got, want):
                np.testing.assert_allclose(np.asarray(g), np.asarray(ref), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype,mask", [("float32", "random"), ("bfloat16", "left_pad")])
def test_mosaic_kernel_through_api(dtype, mask, rng):
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 128, 300, mask, dtype)
    result = longflow_decode_attention(q, k, v, valid, scale=128 ** -0.5, impl="mosaic",
                                       return_importance=True, interpret=True)
    check_against_reference(result, q, k, v, valid, 128 ** -0.5, False, dtype, imp_rel=0.0)


# ----------------------------------------------------------------------------- bad inputs
def _good():
    q = jnp.ones((2, 8, 64), jnp.float32)
    kv = jnp.ones((2, 2, 16, 64), jnp.float32)
    return q, kv, kv, jnp.ones((2, 16), bool)


@pytest.mark.parametrize("mutate,match", [
    (lambda q, k, v, m: (q, k, v[:, :, :8], m), "same shape"),
    (lambda q, k, v, m: (q[:, :7], k, v, m), "multiple of kv_heads"),
    (lambda q, k, v, m: (q, k[:, :, :0], v[:, :, :0], m[:, :0]), "at least one slot"),
    (lambda q, k, v, m: (q, k.astype(jnp.bfloat16), v.astype(jnp.bfloat16), m), "dtype"),
    (lambda q, k, v, m: (q, k, v, m.astype(jnp.int32)), "valid must be bool"),
    (lambda q, k, v, m: (q, k, v, m[:, :8]), "valid must have shape"),
    (lambda q, k, v, m: (q[:1], k, v, m), "batch"),
    (lambda q, k, v, m: (q[..., :32], k, v, m), "head_dim"),
    (lambda q, k, v, m: (q[0], k, v, m), "dimensions"),
    (lambda q, k, v, m: (q.astype(jnp.int32), k.astype(jnp.int32), v.astype(jnp.int32), m),
     "q.dtype must be float32 or bfloat16 \\(float16: impl='xla' only\\)"),
])
def test_bad_inputs_raise_value_error(mutate, match):
    args = mutate(*_good())
    for impl in ("xla", "triton", "auto"):
        with pytest.raises(ValueError, match=match):
            longflow_decode_attention(*args, scale=0.125, impl=impl)
    # The implementations' own entry points give the same message.
    for entry in (longflow_attention_xla,
                  functools.partial(triton_decode.longflow_attention_triton, interpret=True),
                  functools.partial(mosaic_decode.longflow_attention_mosaic, interpret=True)):
        with pytest.raises(ValueError, match=match):
            entry(*args, scale=0.125)


@pytest.mark.parametrize("layer,valid_shape,match", [
    (3, (3, 2, 16), r"layer must be in \[0, 3\)"),
    (-1, (3, 2, 16), r"layer must be in \[0, 3\)"),
    (np.int64(7), (3, 2, 16), r"layer must be in \[0, 3\)"),
    (jnp.int32(-1), (3, 2, 16), r"layer must be in \[0, 3\)"),
    (1.0, (3, 2, 16), "layer must be an integer scalar"),
    (jnp.zeros((2,), jnp.int32), (3, 2, 16), "layer must be an integer scalar"),
    (0, (2, 16), "valid must have 3 dimensions"),
    (0, (4, 2, 16), "valid must be \\[layers, batch, slots\\]"),
])
def test_bad_layer_arguments_raise_value_error(layer, valid_shape, match):
    q, k, v, _ = _good()
    k3, v3 = jnp.stack([k] * 3), jnp.stack([v] * 3)
    for impl in ("xla", "triton", "auto"):
        with pytest.raises(ValueError, match=match):
            longflow_decode_attention(q, k3, v3, jnp.ones(valid_shape, bool), scale=0.125,
                                      layer=layer, impl=impl)
    with pytest.raises(ValueError, match="k must have 5 dimensions"):  # layer= with a 4-D k
        longflow_decode_attention(q, k, v, jnp.ones((3, 2, 16), bool), scale=0.125, layer=0)


def test_bad_options_raise_value_error():
    q, k, v, m = _good()
    with pytest.raises(ValueError, match="impl must be one of"):
        longflow_decode_attention(q, k, v, m, scale=0.125, impl="cuda")
    for scale in (-1.0, True, float("nan")):
        with pytest.raises(ValueError, match="scale"):
            longflow_decode_attention(q, k, v, m, scale=scale)


def test_unsupported_for_triton_raises_or_falls_back(monkeypatch):
    q = jnp.ones((1, 4, 300), jnp.float16)
    kv = jnp.asarray(np.random.default_rng().standard_normal((1, 2, 16, 300)), jnp.float16)
    m = jnp.ones((1, 16), bool)
    with pytest.raises(ValueError, match="q.dtype must be one of"):
        longflow_decode_attention(q, kv, kv, m, scale=0.1, impl="triton")
    q32, kv32 = q.astype(jnp.float32), kv.astype(jnp.float32)
    with pytest.raises(ValueError, match="head_dim must be in"):
        longflow_decode_attention(q32, kv32, kv32, m, scale=0.1, impl="triton")
    # auto: documented fallback to XLA, warned once when on a GPU.
    monkeypatch.setattr(api.jax, "default_backend", lambda: "gpu")
    api._warned.clear()
    with pytest.warns(RuntimeWarning, match="falling back to XLA"):
        out, _ = longflow_decode_attention(q, kv, kv, m, scale=0.1, impl="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        longflow_decode_attention(q, kv, kv, m, scale=0.1, impl="auto")  # no second warning
    ref = longflow_decode_attention(q, kv, kv, m, scale=0.1, impl="xla")[0]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def _kernel_entry(impl: str, direct: bool):
    """The public API pinned to ``impl``, or the kernel module's own entry point."""
    if not direct:
        return functools.partial(longflow_decode_attention, impl=impl)
    if impl == "triton":
        return triton_decode.longflow_attention_triton
    return mosaic_decode.longflow_attention_mosaic


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("impl,platform", [("triton", "a CUDA GPU"), ("mosaic", "a TPU")])
def test_eager_kernel_call_on_the_wrong_backend_says_so(impl, platform, direct, rng):
    """Eager impl="triton"/"mosaic" on CPU (public API or the kernel's own function): a clear
    error naming impl, not Pallas' lowering error."""
    q, k, v, valid = make_inputs(rng, 1, 4, 2, 128, 32, "random", "float32")
    entry = _kernel_entry(impl, direct)
    with pytest.raises(ValueError, match=f"impl='{impl}' runs on {platform}.*'cpu'.*interpret=True"):
        entry(q, k, v, valid, scale=0.1)
    # vmap without jit evaluates the check eagerly too (not Pallas' lowering error)
    with pytest.raises(ValueError, match=f"impl='{impl}' runs on {platform}.*'cpu'.*interpret=True"):
        jax.vmap(lambda q: entry(q, k, v, valid, scale=0.1))(q[None])


@pytest.mark.parametrize("impl,platform,home,custom_call", [
    ("triton", "a CUDA GPU", "cuda", "__gpu$xla.gpu.triton"),
    ("mosaic", "a TPU", "tpu", "tpu_custom_call")])
@pytest.mark.parametrize("direct", [False, True])
def test_jitted_kernel_call_on_the_wrong_platform_says_so(impl, platform, home, custom_call,
                                                          direct, rng):
    """Under jit the platform is known only when compiling: the same clear error then, naming
    impl and the platform being compiled for (not Pallas' "Only interpret mode ..."); lowering
    for the kernel's own platform still works (jax.export's path)."""
    q, k, v, valid = make_inputs(rng, 1, 4, 2, 128, 32, "random", "float32")
    entry = _kernel_entry(impl, direct)
    traced = jax.jit(lambda *a: entry(*a, scale=0.1)).trace(q, k, v, valid)
    for wrong in ("cpu", "tpu" if impl == "triton" else "cuda"):
        with pytest.raises(ValueError, match=f"impl='{impl}' runs on {platform}, but this call "
                                             f"is being compiled for '{wrong}'.*interpret=True"):
            traced.lower(lowering_platforms=(wrong,))
    with pytest.raises(ValueError, match="one platform at a time.*export once per platform"):
        traced.lower(lowering_platforms=("cpu", home))
    assert custom_call in traced.lower(lowering_platforms=(home,)).as_text()


def test_auto_lowered_for_several_platforms_says_export_once_per_platform(rng):
    """impl="auto" holds both kernels behind platform_dependent; jax lowers the branches with
    all the module's platforms, which a Pallas kernel cannot do: say so (not "use impl='auto'")."""
    q, k, v, valid = make_inputs(rng, 1, 4, 2, 128, 32, "random", "float32")
    traced = jax.jit(lambda *a: longflow_decode_attention(*a, scale=0.1)).trace(q, k, v, valid)
    with pytest.raises(ValueError, match="one platform at a time.*export once per platform"):
        traced.lower(lowering_platforms=("cpu", "cuda"))
    xla = jax.jit(lambda *a: longflow_decode_attention(*a, scale=0.1, impl="xla"))
    xla.trace(q, k, v, valid).lower(lowering_platforms=("cpu", "cuda", "tpu"))  # no kernel: fine


def test_nan_importance_keeps_the_eviction_slot_in_range(rng):
    """A NaN in q makes the importance NaN (garbage in); the slot must still index the buffer:
    as jnp.argmin in the XLA path, the first NaN (here the first valid) slot, on every impl."""
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 300, "random", "float32")
    valid = valid.at[0, :5].set(False).at[0, 5].set(True)  # row 0: first valid slot is 5
    q = q.at[0, 3, 5].set(jnp.nan)
    for impl in ["xla", "triton", "mosaic"]:
        _, slot, imp = longflow_decode_attention(q, k, v, valid, scale=0.125, impl=impl,
                                                 return_importance=True,
                                                 interpret=impl != "xla")
        assert np.isnan(np.asarray(imp[0])[np.asarray(valid[0])]).all(), impl
        ref = longflow_attention_reference(q[1:], k[1:], v[1:], np.asarray(valid[1:]), 0.125)
        assert np.asarray(slot).tolist() == [5, int(ref[1][0])], impl


@pytest.mark.parametrize("chunks", ["one", "many"])
def test_infinite_importance_keeps_the_eviction_slot_in_range(chunks, rng, request):
    """Finite V whose L1 norm overflows fp32 (|v| = 1e37 over 64 dims) makes every importance
    of row 0 +inf; the slot must still index the buffer: jnp.argmin's first slot, on every
    impl (the Triton combine once returned INT32_MAX here), with one or several chunks."""
    if chunks == "many":
        request.getfixturevalue("many_chunks")
    q, k, v, valid = make_inputs(rng, 2, 8, 2, 64, 300, "all", "float32")
    v = v.at[0].set(jnp.where(v[0] < 0, -1e37, 1e37))
    valid = valid.at[1, 7].set(False)  # row 1: an empty slot ranks first
    for impl in ["xla", "triton", "mosaic"]:
        _, slot, imp = longflow_decode_attention(q, k, v, valid, scale=0.125, impl=impl,
                                                 return_importance=True,
                                                 interpret=impl != "xla")
        assert np.isposinf(np.asarray(imp[0])).all(), impl
        assert np.asarray(slot).tolist() == [0, 7], impl


@pytest.mark.parametrize("dtype,heads,mask,per_kv_head", [
    ("bfloat16", (8, 2), "random", False), ("bfloat16", (9, 3), "single", True),
    ("float32", (8, 2), "left_pad", True), ("float32", (4, 1), "single", False),
])
def test_one_split_writes_the_output_in_the_split_kernel(dtype, heads, mask, per_kv_head, rng):
    """One split per row (several tiles): the split kernel normalises and writes the output
    itself, the combine merges importance only; checked against the float64 reference."""
    (hq, hkv), slots, d = heads, 200, 64
    q, k, v, valid = make_inputs(rng, 3, hq, hkv, d, slots, mask, dtype)
    cfg = triton_decode.plan_config(3, hkv, slots, d, jnp.dtype(dtype), num_splits=1, block_k=32)
    assert cfg.num_splits == 1 and cfg.blocks_per_split > 1
    o_part = triton_decode._split_partials(q, k[None], v[None], valid[None],
                                           jnp.zeros((1,), jnp.int32), scale=0.125, cfg=cfg,
                                           interpret=True)[0]
    assert o_part.shape == (3, hkv, hq // hkv, d) and o_part.dtype == q.dtype  # the final output
    result = triton_decode.longflow_attention_triton(
        q, k, v, valid, scale=0.125, per_kv_head=per_kv_head, interpret=True, config=cfg)
    check_against_reference(result, q, k, v, valid, 0.125, per_kv_head, dtype)


@pytest.mark.parametrize("row_loop", [False, True])
@pytest.mark.parametrize("chunks", [1, 2])
@pytest.mark.parametrize("per_kv_head", [False, True])
def test_ties_across_the_steps_of_a_chunk_go_to_the_lowest_slot(monkeypatch, chunks, per_kv_head,
                                                                row_loop):
    """Exact ties spread over several loop steps of a combine program (per-lane running minimum):
    the lowest slot wins, whether the two candidates share a lane (72, 200) or not (73, 263)."""
    from pallas_kernels import triton_combine
    monkeypatch.setattr(triton_combine, "_MAX_STEP_SLOTS", 64)  # one 64-slot tile per step
    rng = np.random.default_rng(5)
    batch, kv_heads, slots, d = 3, 2, 300, 64
    q, k, v = tied_inputs(rng, batch, kv_heads, slots, d)
    valid = np.ones((batch, slots), bool)
    valid[1, [200, 72]] = False  # same lane (72 = 200 - 2 * 64): the earlier step must win
    valid[2, [263, 73]] = False  # different lanes and steps
    outputs = kv_heads if per_kv_head else 1
    # One round holds one (two) chunk(s) per row -> 1 chunk of 5 steps (2 chunks of 3 and 2 steps).
    combine_programs = chunks * batch * outputs
    cfg = triton_decode.plan_config(batch, kv_heads, slots, d, jnp.float32,
                                    combine_programs=combine_programs, combine_row_loop=row_loop)
    plan = triton_combine.plan_combine(batch, outputs, 2 if per_kv_head else 4, 2,
                                       -(-slots // cfg.block_k), cfg.block_k, d,
                                       target_programs=combine_programs, row_loop=row_loop)
    assert plan.num_chunks == chunks and plan.steps_per_chunk >= 2 and plan.row_loop is row_loop
    _, slot, _ = triton_decode.longflow_attention_triton(
        q, k, v, jnp.asarray(valid), scale=0.125, per_kv_head=per_kv_head, interpret=True,
        config=cfg)
    expected = [0, 72, 73]
    assert np.asarray(slot).tolist() == ([[s, s] for s in expected] if per_kv_head else expected)
