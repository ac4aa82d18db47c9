"""Float64 NumPy reference for LongFlow decode attention (the kernels' oracle).

Written from the definition in arXiv 2603.11504, Sec. 3, independently of
``pallas_kernels/xla.py``: per query head an explicit softmax over the valid
slots, then the per-slot importance ``sum_h p[h, s] * ||v[kv(h), s]||_1``
normalised by ``heads * head_dim``.  Everything runs in float64 so it can
judge both the fp32 and the bf16 paths.  ``random_decode_inputs``, the input
generator shared by the tests and the device benchmarks, is the only function
here that touches jax (to hand the kernels their arrays).
"""

from __future__ import annotations

import numpy as np


def _eviction_slot(importance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid slots first (key -1), else the least important; lowest index on ties."""
    key = np.where(valid, importance, -1.0)
    return np.argmin(key, axis=-1).astype(np.int32)


def longflow_attention_reference(q, k, v, valid, scale: float, per_kv_head: bool = False):
    """LongFlow decode attention in float64.

    Args:
      q: ``[batch, q_heads, head_dim]`` any float dtype (bf16 arrays are
        upcast exactly, so the reference sees the same rounded inputs).
      k, v: ``[batch, kv_heads, slots, head_dim]``.
      valid: ``[batch, slots]`` bool.
      scale: softmax scale.
      per_kv_head: importance/slot per KV head instead of per sequence.

    Returns:
      ``(out, slot, importance)``: out ``[batch, q_heads, head_dim]`` float64
      (zeros for a row with no valid slot), slot int32 ``[batch]`` (or
      ``[batch, kv_heads]``), importance float64 ``[batch, slots]`` (or
      ``[batch, kv_heads, slots]``), 0 at invalid slots.
    """
    q = np.asarray(q, dtype=np.float32).astype(np.float64)
    k = np.asarray(k, dtype=np.float32).astype(np.float64)
    v = np.asarray(v, dtype=np.float32).astype(np.float64)
    valid = np.asarray(valid, dtype=bool)
    batch, q_heads, head_dim = q.shape
    kv_heads, slots = k.shape[1], k.shape[2]
    group = q_heads // kv_heads

    out = np.zeros((batch, q_heads, head_dim))
    probs = np.zeros((batch, q_heads, slots))
    for b in range(batch):
        idx = np.flatnonzero(valid[b])
        if idx.size == 0:
            continue  # no valid slot: output and probabilities stay 0
        for h in range(q_heads):
            kvh = h // group
            logits = k[b, kvh, idx] @ q[b, h] * scale
            w = np.exp(logits - logits.max())
            p = w / w.sum()
            probs[b, h, idx] = p
            out[b, h] = p @ v[b, kvh, idx]

    v_l1 = np.abs(v).sum(axis=-1)  # [batch, kv_heads, slots]
    contrib = probs * np.repeat(v_l1, group, axis=1)  # [batch, q_heads, slots]
    if per_kv_head:
        importance = contrib.reshape(batch, kv_heads, group, slots).sum(axis=2) / (group * head_dim)
        slot = _eviction_slot(importance, valid[:, None, :])
    else:
        importance = contrib.sum(axis=1) / (q_heads * head_dim)
        slot = _eviction_slot(importance, valid)
    return out, slot, importance


def random_decode_inputs(rng, batch, q_heads, kv_heads, head_dim, slots, mask, dtype):
    """Fresh random (q, k, v, valid) as jax arrays in ``dtype`` for kernel checks and benchmarks.

    ``mask``: "all" (every slot valid), "random" (~60% valid, at least one),
    "single" (one valid slot per row) or "left_pad" (padding, then tokens).
    """
    import jax.numpy as jnp

    q = rng.standard_normal((batch, q_heads, head_dim)).astype(np.float32)
    k = rng.standard_normal((batch, kv_heads, slots, head_dim)).astype(np.float32)
    v = rng.standard_normal((batch, kv_heads, slots, head_dim)).astype(np.float32)
    if mask == "all":
        valid = np.ones((batch, slots), bool)
    elif mask == "random":
        valid = rng.random((batch, slots)) < 0.6
        valid[:, rng.integers(slots)] = True
    elif mask == "single":  # all but one slot invalid
        valid = np.zeros((batch, slots), bool)
        valid[np.arange(batch), rng.integers(0, slots, batch)] = True
    elif mask == "left_pad":
        valid = np.arange(slots)[None, :] >= rng.integers(0, slots, (batch, 1))
    else:
        raise ValueError(mask)
    qj, kj, vj = (jnp.asarray(x, dtype) for x in (q, k, v))
    return qj, kj, vj, jnp.asarray(valid)
