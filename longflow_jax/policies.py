"""Eviction policies: LongFlow's per-step rule and SnapKV prompt compression at prefill.

* ``longflow``: fixed ``budget`` slots; at each decode step the slot with the
  lowest importance (arXiv 2603.11504, Sec. 3; computed inside the attention
  kernel, see ``pallas_kernels``) receives the next token.
* ``longflow-per-head``: the same rule applied per KV head (each head sums
  importance over its own query group and evicts its own slot); the paper's
  default shares one eviction across the heads of a layer.
* ``full``: the same code path with the buffer sized to hold every token, so
  the rule only ever picks empty slots and nothing is evicted.

Prompts longer than ``budget - 1`` tokens are compressed with SnapKV
(Li et al. 2024, arXiv 2404.14469, Sec. 4): the last ``window`` prompt
queries vote for earlier positions; votes are summed over heads and window
queries, smoothed by average pooling, and the top-k positions plus the window
itself are kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POLICIES = ("longflow", "longflow-per-head", "full")
SNAPKV_WINDOW = 32
SNAPKV_POOL = 5


def snapkv_window_size(budget: int) -> int:
    """Observation window actually used for a buffer of ``budget`` slots.

    32 queries as in SnapKV, shrunk for tiny budgets so that the window fits
    in the ``budget - 1`` slots kept at prefill (then only the window is kept).
    """
    return min(SNAPKV_WINDOW, budget - 1)


def snapkv_select(window_scores: jax.Array, key_valid: jax.Array, keep: int) -> jax.Array:
    """Prompt positions SnapKV keeps: top-k voted prefix positions plus the observation window.

    Args:
      window_scores: ``[batch, T]`` float32, attention mass each prompt position
        receives from the window queries, summed over heads and queries.
      key_valid: ``[batch, T]`` bool (False at left padding).
      keep: number of positions to keep (``budget - 1``), < T.

    Returns:
      ``[batch, keep]`` int32 positions, ascending.  The window (the last
      ``w = min(32, keep)`` positions) is always included; padding positions are
      chosen only when a row has fewer than ``keep`` real tokens (they stay
      invalid in the buffer).
    """
    t = window_scores.shape[1]
    w = snapkv_window_size(keep + 1)  # keep = budget - 1
    n_top = keep - w
    window = jnp.broadcast_to(jnp.arange(t - w, t, dtype=jnp.int32), (window_scores.shape[0], w))
    if n_top == 0:
        return window
    prefix = window_scores[:, : t - w]
    # Average pooling of width 5, stride 1, zero padding counted (torch avg_pool1d defaults).
    pad = SNAPKV_POOL // 2
    padded = jnp.pad(prefix, ((0, 0), (pad, pad)))
    pooled = sum(padded[:, i : i + prefix.shape[1]] for i in range(SNAPKV_POOL)) / SNAPKV_POOL
    pooled = jnp.where(key_valid[:, : t - w], pooled, -jnp.inf)
    _, top = jax.lax.top_k(pooled, n_top)
    top = jnp.sort(top.astype(jnp.int32), axis=-1)
    return jnp.concatenate([top, window], axis=-1)
