"""Mosaic LongFlow decode kernel (interpret mode) vs a float64 NumPy reference.

The kernel runs in the Pallas TPU interpreter with out-of-bounds reads filled
with NaN, so a ragged last slot block that is not masked shows up as NaN.
Cases are a pairwise covering set of batch x heads x head_dim x slots x mask
x dtype x per_kv_head (the full cross-product is too slow to interpret);
``test_cases_cover_all_pairs`` keeps it honest.
"""

from __future__ import annotations

import itertools
import os
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu
from kernel_checks import check_against_reference

from pallas_kernels.mosaic_decode import longflow_attention_mosaic

# NaN-filled out-of-bounds reads: catches an unmasked ragged last block.
INTERPRET = (pltpu.InterpretParams(out_of_bounds_reads="uninitialized", uninitialized_memory="nan")
             if hasattr(pltpu, "InterpretParams") else True)
BASE_SEED = int(os.environ.get("LONGFLOW_TEST_SEED", np.random.SeedSequence().entropy % (2**31)))

PARAMETER_VALUES = {
    "batch": [1, 3, 8],
    "heads": [(1, 1), (4, 1), (8, 2), (32, 8), (9, 3)],  # (q_heads, kv_heads)
    "head_dim": [64, 128],
    "slots": [16, 100, 1024, 4096],
    "mask": ["all", "random", "single", "left_pad"],
    "dtype": ["float32", "bfloat16"],
    "per_kv_head": [False, True],
}
# Greedy pairwise cover, biased towards small grids (interpret mode is slow).
CASES = [
    (1, (4, 1), 128, 100, "random", "bfloat16", True),
    (1, (1, 1), 64, 16, "all", "float32", False),
    (3, (8, 2), 128, 1024, "single", "bfloat16", False),
    (8, (9, 3), 64, 1024, "left_pad", "float32", True),
    (3, (4, 1), 64, 4096, "random", "float32", False),
    (8, (1, 1), 128, 4096, "all", "bfloat16", True),
    (3, (32, 8), 128, 16, "left_pad", "bfloat16", True),
    (8, (32, 8), 64, 100, "single", "float32", False),
    (3, (9, 3), 128, 100, "all", "float32", False),
    (1, (8, 2), 64, 4096, "single", "bfloat16", True),
    (8, (8, 2), 128, 16, "random", "float32", False),
    (1, (9, 3), 128, 4096, "left_pad", "bfloat16", False),
    (1, (32, 8), 128, 1024, "all", "bfloat16", True),
    (3, (1, 1), 64, 100, "left_pad", "float32", False),
    (8, (4, 1), 128, 16, "single", "bfloat16", False),
    (1, (1, 1), 128, 1024, "random", "bfloat16", True),
    (1, (8, 2), 128, 100, "left_pad", "bfloat16", False),
    (1, (4, 1), 128, 1024, "left_pad", "bfloat16", True),
    (1, (9, 3), 128, 16, "random", "bfloat16", False),
    (1, (4, 1), 128, 100, "all", "bfloat16", True),
    (1, (1, 1), 64, 16, "single", "bfloat16", False),
    (1, (8, 2), 128, 16, "all", "bfloat16", False),
    (1, (9, 3), 128, 100, "single", "float32", False),
    (1, (32, 8), 128, 100, "random", "float32", False),
    (1, (32, 8), 128, 4096, "all", "float32", False),
]


def _make_valid(rng, batch, slots, mask):
    if mask == "all":
        return np.ones((batch, slots), bool)
    if mask == "random":
        valid = rng.random((batch, slots)) < 0.6
        valid[np.arange(batch), rng.integers(0, slots, batch)] = True  # at least one
        return valid
    if mask == "single":  # all but one slot invalid
        valid = np.zeros((batch, slots), bool)
        valid[np.arange(batch), rng.integers(0, slots, batch)] = True
        return valid
    if mask == "left_pad":  # each row: padding, then its tokens at the end
        pad = rng.integers(1, slots, batch)
        return np.arange(slots)[None, :] >= pad[:, None]
    raise AssertionError(mask)


def _make_inputs(seed, batch, q_heads, kv_heads, head_dim, slots, mask, dtype):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, q_heads, head_dim)) * 1.5
    k = rng.standard_normal((batch, kv_heads, slots, head_dim))
    # Per-slot magnitudes spread the importance so the argmin is well defined.
    v = rng.standard_normal((batch, kv_heads, slots, head_dim)) * rng.uniform(0.2, 2.0, (batch, kv_heads, slots, 1))
    valid = _make_valid(rng, batch, slots, mask)
    cast = lambda x: jnp.asarray(x, jnp.float32).astype(dtype)  # noqa: E731
    return cast(q), cast(k), cast(v), jnp.asarray(valid)


def _run_case(seed, batch, heads, head_dim, slots, mask, dtype, per_kv_head):
    q_heads, kv_heads = heads
    q, k, v, valid = _make_inputs(seed, batch, q_heads, kv_heads, head_dim, slots, mask, dtype)
    scale = head_dim ** -0.5
    out, slot, importance = longflow_attention_mosaic(
        q, k, v, valid, scale=scale, per_kv_head=per_kv_head, interpret=INTERPRET)

    imp_shape = (batch, kv_heads, slots) if per_kv_head else (batch, slots)
    assert out.shape == (batch, q_heads, head_dim) and out.dtype == q.dtype
    assert importance.shape == imp_shape and importance.dtype == jnp.float32
    assert slot.shape == imp_shape[:-1] and slot.dtype == jnp.int32
    # Importance in fp32 for both dtypes (no bf16 partials): no per-slot relative slack.
    check_against_reference((out, slot, importance), q, k, v, valid, scale, per_kv_head, dtype,
                            imp_rel=0.0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_matches_float64_reference(case):
    seed = BASE_SEED + zlib.crc32(repr(case).encode())
    try:
        _run_case(seed, *case)
    except AssertionError as err:
        raise AssertionError(f"{err} (LONGFLOW_TEST_SEED={BASE_SEED})") from err


def test_cases_cover_all_pairs():
    names = list(PARAMETER_VALUES)
    covered = {(i, c[i], j, c[j]) for c in CASES for i, j in itertools.combinations(range(len(names)), 2)}
    for i, j in itertools.combinations(range(len(names)), 2):
        for a, b in itertools.product(PARAMETER_VALUES[names[i]], PARAMETER_VALUES[names[j]]):
            assert (i, a, j, b) in covered, f"pair {names[i]}={a}, {names[j]}={b} untested"


@pytest.mark.parametrize("per_kv_head", [False, True])
def test_row_without_valid_slot_gives_zeros(per_kv_head):
    q, k, v, _ = _make_inputs(BASE_SEED, 2, 8, 2, 64, 300, "all", "float32")
    valid = jnp.asarray(np.array([[False] * 300, [False] * 299 + [True]]))
    out, slot, importance = longflow_attention_mosaic(
        q, k, v, valid, scale=0.125, per_kv_head=per_kv_head, interpret=INTERPRET)
    assert np.all(np.isfinite(np.asarray(out))) and np.all(np.isfinite(np.asarray(importance)))
    assert np.all(np.asarray(out[0]) == 0) and np.all(np.asarray(importance[0]) == 0)
    assert np.all(np.asarray(slot[0]) == 0)  # invalid slots fill first, lowest index
    assert np.all(np.asarray(slot[1]) == 0)
    assert np.all(np.asarray(importance[1])[..., -1] > 0)


@pytest.mark.parametrize("bad, message", [
    (dict(q=jnp.ones((2, 4, 96))), "head_dim"),
    (dict(q=jnp.ones((2, 3, 64))), "multiple of kv_heads"),
    (dict(q=jnp.ones((2, 4, 64), jnp.float16)), "dtype"),
    (dict(k=jnp.ones((2, 2, 50, 64), jnp.bfloat16)), "k and v must have q's dtype"),
    (dict(valid=jnp.ones((2, 49), bool)), "valid"),
    (dict(valid=jnp.ones((2, 50), jnp.int32)), "valid"),
    (dict(q=jnp.ones((4, 64))), "q must have 3 dimensions"),
    (dict(scale=float("nan")), "scale must be a positive finite"),
    (dict(layer=7, k=jnp.ones((2, 2, 2, 50, 64)), v=jnp.ones((2, 2, 2, 50, 64)),
          valid=jnp.ones((2, 2, 50), bool)), r"layer must be in \[0, 2\)"),
])
def test_rejects_bad_inputs(bad, message):
    args = dict(q=jnp.ones((2, 4, 64)), k=jnp.ones((2, 2, 50, 64)), v=jnp.ones((2, 2, 50, 64)),
                valid=jnp.ones((2, 50), bool), scale=0.125)
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        longflow_attention_mosaic(**args, interpret=True)
