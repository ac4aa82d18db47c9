"""The fixed-size KV buffer: ``budget`` slots per (layer, sequence), never grown.

LongFlow (arXiv 2603.11504, Sec. 3) keeps a constant number of cached tokens
per layer; each decode step overwrites one slot chosen by the eviction rule.
The buffer is a pytree, updated functionally, whose shapes depend only on
(layers, batch, kv_heads, budget, head_dim): never on ``max_new_tokens``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class KVBuffer:
    """Per-layer fixed-size KV cache.

    Attributes:
      k: ``[layers, batch, kv_heads, budget, head_dim]`` keys after RoPE (model dtype).
      v: ``[layers, batch, kv_heads, budget, head_dim]`` values (model dtype).
      valid: ``[layers, batch, budget]`` bool, True where the slot holds a token.
      position: ``[layers, batch, budget]`` int32, original token position of the
        slot's token (-1 if empty); for analysis and position-aware policies.
        ``[layers, batch, kv_heads, budget]`` with per-KV-head eviction.
      next_slot: ``[layers, batch]`` int32, slot the next token's K/V are written to
        (chosen by the eviction rule at the previous step); ``[layers, batch,
        kv_heads]`` with per-KV-head eviction (policy ``longflow-per-head``).
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    position: jax.Array
    next_slot: jax.Array

    @property
    def budget(self) -> int:
        """Slots per (layer, sequence)."""
        return self.k.shape[3]

    @property
    def per_kv_head(self) -> bool:
        """True if each KV head evicts on its own (policy ``longflow-per-head``)."""
        return self.next_slot.ndim == 3

    @property
    def nbytes(self) -> int:
        """Device bytes held by the buffer (K, V and bookkeeping)."""
        return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(self))


def write_token(k_buf, v_buf, valid, position, slot, k_new, v_new, pos_new):
    """Scatter one token per sequence into its slot (one layer).

    Args:
      k_buf, v_buf: ``[batch, kv_heads, budget, head_dim]``.
      valid: ``[batch, budget]``.
      position: ``[batch, budget]`` (``[batch, kv_heads, budget]`` per KV head).
      slot: ``[batch]`` int32 target slot (``[batch, kv_heads]`` per KV head).
      k_new, v_new: ``[batch, kv_heads, head_dim]``.
      pos_new: ``[batch]`` int32 token position.
    Returns:
      The four updated arrays.
    """
    rows = jnp.arange(k_buf.shape[0])
    if slot.ndim == 2:
        heads = jnp.arange(k_buf.shape[1])
        idx = (rows[:, None], heads[None, :], slot)
        k_buf = k_buf.at[idx].set(k_new.astype(k_buf.dtype), unique_indices=True)
        v_buf = v_buf.at[idx].set(v_new.astype(v_buf.dtype), unique_indices=True)
        position = position.at[idx].set(jnp.broadcast_to(pos_new[:, None], slot.shape), unique_indices=True)
        # Every head holds the same number of tokens and empty slots are filled
        # lowest index first, so all heads share one validity mask: while a slot
        # is empty every head picks the same one.  Head 0's slot marks it.
        valid = valid.at[rows, slot[:, 0]].set(True, unique_indices=True)
        return k_buf, v_buf, valid, position
    k_buf = k_buf.at[rows, :, slot].set(k_new.astype(k_buf.dtype), unique_indices=True)
    v_buf = v_buf.at[rows, :, slot].set(v_new.astype(v_buf.dtype), unique_indices=True)
    valid = valid.at[rows, slot].set(True, unique_indices=True)
    position = position.at[rows, slot].set(pos_new, unique_indices=True)
    return k_buf, v_buf, valid, position
