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


def write_token(buffer: KVBuffer, layer, k_new, v_new, pos_new) -> KVBuffer:
    """Scatter one token per sequence into layer ``layer``'s ``next_slot``, in place.

    The whole stacked buffer is updated at ``[layer, row, :, slot]``: inside a
    ``lax.scan`` over layers that carries the buffer, XLA performs this as an
    in-place scatter, so a decode step moves one token's bytes, not a copy of
    the layer (see ``model.decode_step``).

    Args:
      buffer: the stacked :class:`KVBuffer`.
      layer: int32 scalar in ``[0, layers)`` (may be traced; not checked: a
        traced negative value counts from the end, as in NumPy indexing, and
        one >= layers makes the write a no-op, as XLA drops out-of-bounds
        scatter updates).
      k_new, v_new: ``[batch, kv_heads, head_dim]``, cast to the buffer's dtype.
      pos_new: ``[batch]`` int32 token position.
    Returns:
      The updated buffer (``next_slot`` unchanged).
    """
    slot = buffer.next_slot[layer]  # [batch] or [batch, kv_heads]
    rows = jnp.arange(buffer.k.shape[1])
    k_new, v_new = k_new.astype(buffer.k.dtype), v_new.astype(buffer.v.dtype)
    if buffer.per_kv_head:
        heads = jnp.arange(buffer.k.shape[2])
        idx = (layer, rows[:, None], heads[None, :], slot)
        position = buffer.position.at[idx].set(jnp.broadcast_to(pos_new[:, None], slot.shape),
                                               unique_indices=True)
        # Every head holds the same number of tokens and empty slots are filled
        # lowest index first, so all heads share one validity mask: while a slot
        # is empty every head picks the same one.  Head 0's slot marks it.
        valid = buffer.valid.at[layer, rows, slot[:, 0]].set(True, unique_indices=True)
    else:
        idx = (layer, rows, slice(None), slot)
        valid = buffer.valid.at[layer, rows, slot].set(True, unique_indices=True)
        position = buffer.position.at[layer, rows, slot].set(pos_new, unique_indices=True)
    return buffer.replace(k=buffer.k.at[idx].set(k_new, unique_indices=True),
                          v=buffer.v.at[idx].set(v_new, unique_indices=True),
                          valid=valid, position=position)
