"""Pure-XLA LongFlow decode attention: the CPU path and the kernels' fast oracle.

One decode query per sequence attends over a fixed buffer of ``slots`` cached
K/V entries.  Besides the attention output it returns LongFlow's per-slot
importance (arXiv 2603.11504, Sec. 3: the L1 norm of each slot's contribution
``p[h, s] * v[s]``, summed over query heads and divided by
``q_heads * head_dim``) and the slot to evict next (its argmin).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pallas_kernels._validation import validate_decode_args

# Value given to the logits of invalid slots, shared by every implementation.
# Finite so that a row with no valid slot yields zeros rather than NaN.
MASK_VALUE = -1e30


def select_eviction_slot(importance: jax.Array, valid: jax.Array) -> jax.Array:
    """Slot that receives the next token: argmin of importance, lowest index on ties.

    Invalid (empty or padding) slots score 0 in LongFlow, so they fill first.
    To make "fill first" hold even when a valid slot's fp32 importance
    underflows to exactly 0, invalid slots are ranked strictly below every
    valid slot (key -1); among valid slots this is exactly argmin(importance).

    Args:
      importance: ``[..., slots]`` float32, >= 0.
      valid: ``[..., slots]`` bool.
    Returns:
      ``[...]`` int32 slot index.
    """
    key = jnp.where(valid, importance, -1.0)
    return jnp.argmin(key, axis=-1).astype(jnp.int32)


def longflow_attention_xla(q, k, v, valid, *, scale: float, layer=None, per_kv_head: bool = False):
    """Decode attention with LongFlow importance, in plain jax.numpy.

    Args:
      q: ``[batch, q_heads, head_dim]`` float32, bfloat16 or float16.
      k, v: ``[batch, kv_heads, slots, head_dim]``, q's dtype; ``q_heads``
        must be a multiple of ``kv_heads`` (GQA).  With ``layer``: the
        stacked buffer ``[layers, batch, kv_heads, slots, head_dim]``.
      valid: ``[batch, slots]`` bool, True where the slot holds a token
        (``[layers, batch, slots]`` with ``layer``).
      scale: softmax scale, a positive Python float (static), usually
        ``head_dim ** -0.5``.
      layer: None or an int32 scalar (may be traced) selecting the layer.
      per_kv_head: if True, importance and eviction slot are kept per KV head
        (sum over that head's query group only).

    Returns:
      out: ``[batch, q_heads, head_dim]`` in q's dtype (zeros for a row with
        no valid slot).
      slot: ``[batch]`` int32 (``[batch, kv_heads]`` if per_kv_head).
      importance: ``[batch, slots]`` float32 (``[batch, kv_heads, slots]`` if
        per_kv_head); 0 at invalid slots.

    Raises:
      ValueError: at trace time, for bad shapes, dtypes, ``scale`` or ``layer``
        (as ``longflow_decode_attention``; float16 is allowed here).
    """
    validate_decode_args(q, k, v, valid, scale=scale, impl="xla", layer=layer)
    if layer is not None:
        # Clamp like the kernels (dynamic_index_in_dim would wrap a negative index).
        layer = jnp.clip(jnp.asarray(layer, jnp.int32), 0, k.shape[0] - 1)
        k, v, valid = (jax.lax.dynamic_index_in_dim(x, layer, 0, keepdims=False)
                       for x in (k, v, valid))
    b, hq, d = q.shape
    hkv = k.shape[1]
    g = hq // hkv
    qg = q.reshape(b, hkv, g, d).astype(jnp.float32)
    # fp32 inputs get full fp32 dots: XLA's default on GPU is TF32 (~1e-3
    # relative error), enough to flip eviction decisions between near-equal
    # slots.  bf16 inputs are exact in TF32, so they keep the fast default.
    hi = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
    logits = jnp.einsum("bkgd,bksd->bkgs", qg, k.astype(jnp.float32), precision=hi) * scale
    mask = valid[:, None, None, :]
    logits = jnp.where(mask, logits, MASK_VALUE)
    m = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.where(mask, jnp.exp(logits - m), 0.0)
    denom = jnp.sum(e, axis=-1, keepdims=True)
    p = e / jnp.maximum(denom, 1e-30)
    out = jnp.einsum("bkgs,bksd->bkgd", p, v.astype(jnp.float32), precision=hi)
    out = out.reshape(b, hq, d).astype(q.dtype)
    v_l1 = jnp.sum(jnp.abs(v.astype(jnp.float32)), axis=-1)  # [b, hkv, s]
    per_head = jnp.sum(p, axis=2) * v_l1  # [b, hkv, s]
    if per_kv_head:
        importance = per_head / (g * d)
        slot = select_eviction_slot(importance, valid[:, None, :])
    else:
        importance = jnp.sum(per_head, axis=1) / (hq * d)
        slot = select_eviction_slot(importance, valid)
    return out, slot, importance
