"""Shared checks of a decode-attention result against the float64 NumPy reference."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pallas_kernels.reference import longflow_attention_reference

OUT_TOL = {"float32": 1e-5, "bfloat16": 2e-2}
# Importance error allowed: IMP_REL * |reference| + IMP_TOL * max |reference|.  The
# math is fp32 for both dtypes; bf16 inputs store each per-head term in bf16
# once (triton_decode: round to nearest, relative error <= 2**-8 with bf16's 8
# significant bits), and a sum of such terms keeps that per-slot relative bound.
IMP_TOL = {"float32": 1e-5, "bfloat16": 1e-5}
IMP_REL = {"float32": 0.0, "bfloat16": 2.0 ** -8}


def f32(x):
    return np.asarray(jnp.asarray(x, jnp.float32))


def check_against_reference(result, q, k, v, valid, scale, per_kv_head, dtype,
                            imp_rel=None):
    """Asserts ``result = (out, slot, importance)`` matches the float64 reference.

    Output: relative Frobenius error <= ``OUT_TOL[dtype]``.  Importance, per slot:
    ``|err| <= imp_rel * |ref| + IMP_TOL[dtype] * max |ref|`` (``imp_rel`` defaults
    to ``IMP_REL[dtype]``, the Triton kernel's bf16 partials; 0 for implementations
    that keep fp32), and exactly 0 at invalid slots.  Eviction slot: equal to the
    reference's in every row whose choice is decisive: the two smallest keys
    further apart than twice the importance bound, or the row has an invalid slot
    (its first invalid slot must be chosen exactly).
    """
    out, slot, imp = result
    assert out.dtype == q.dtype and out.shape == q.shape
    assert slot.dtype == jnp.int32 and imp.dtype == jnp.float32
    valid_np = np.asarray(valid)
    r_out, r_slot, r_imp = longflow_attention_reference(
        f32(q), f32(k), f32(v), valid_np, scale, per_kv_head)
    out, imp, slot = f32(out), np.asarray(imp), np.asarray(slot)
    assert np.isfinite(out).all() and np.isfinite(imp).all()
    assert slot.shape == r_slot.shape and imp.shape == r_imp.shape

    rel = np.linalg.norm(out - r_out) / np.linalg.norm(r_out)
    assert rel <= OUT_TOL[dtype], f"output rel err {rel:.3e}"
    imp_abs = IMP_TOL[dtype] * np.abs(r_imp).max()
    imp_rel = IMP_REL[dtype] if imp_rel is None else imp_rel
    bound = imp_rel * np.abs(r_imp) + imp_abs
    worst = np.argmax(np.abs(imp - r_imp) - bound)
    assert (np.abs(imp - r_imp) <= bound).all(), (
        f"importance err {np.abs(imp - r_imp).flat[worst]:.3e} > {bound.flat[worst]:.3e}")
    mask = valid_np[:, None, :] if per_kv_head else valid_np
    assert (imp[np.broadcast_to(~mask, imp.shape)] == 0).all(), "invalid slots must score 0"

    # The eviction slot must match wherever the reference's choice is not a near tie
    # of importances; a row with an invalid slot must pick its first invalid slot
    # exactly (that rule involves no rounding).
    keys = np.sort(np.where(mask, r_imp, -1.0), axis=-1)
    decisive = (keys[..., 1] - keys[..., 0] > 2 * (imp_rel * np.abs(keys[..., 1]) + imp_abs)
                ) if keys.shape[-1] > 1 else np.ones(keys.shape[:-1], bool)
    decisive |= keys[..., 0] < 0
    assert (slot[decisive] == r_slot[decisive]).all(), "eviction slot differs from reference"
