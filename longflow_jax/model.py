"""Flax decoder for Llama / Qwen2 / Qwen3 with LongFlow's fixed-size KV buffer.

Parameters live in a :class:`Decoder` (``flax.nnx`` module) whose per-layer
weights are stacked on a leading ``layers`` axis, so the forward passes scan
over layers (one compiled layer body instead of ``num_layers`` copies: short
CPU compiles).  The forward passes themselves are pure functions of the
parameter pytree (``Decoder.params()``), suitable for ``jax.jit``:

* :func:`prefill`: batched, left-padded prompts -> last-position logits and a
  filled :class:`~longflow_jax.kv_buffer.KVBuffer` (SnapKV-compressed when the
  prompt does not fit in ``budget - 1`` slots).
* :func:`decode_step`: one token per sequence -> logits, with each layer
  writing the token into its chosen slot, attending over the buffer, and
  choosing the slot for the next token (LongFlow, arXiv 2603.11504, Sec. 3).

Weight layout (``[in, out]`` matrices, i.e. HF's ``weight.T``)::

    embed [vocab, hidden]      final_norm [hidden]      lm_head [hidden, vocab] (untied only)
    layers/attn_norm [L, hidden]   wq [L, hidden, Hq*D]   wk, wv [L, hidden, Hkv*D]   wo [L, Hq*D, hidden]
    layers/bq, bk, bv (Qwen2)      bo (attention_bias)    q_norm, k_norm [L, D] (Qwen3)
    layers/mlp_norm [L, hidden]    w_gate, w_up [L, hidden, F]   w_down [L, F, hidden]
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from longflow_jax import layers as L
from longflow_jax.config import ModelConfig
from longflow_jax.kv_buffer import KVBuffer, write_token
from longflow_jax.policies import snapkv_select, snapkv_window_size
from pallas_kernels import longflow_decode_attention, select_eviction_slot
from pallas_kernels._validation import is_int as _is_int

_MASK_VALUE = -1e30
# dtypes longflow_decode_attention accepts (float16: its XLA path only; the kernels take fp32 / bf16)
BUFFER_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def check_params_cfg(params, cfg) -> None:
    """Checks that ``params`` is a parameter mapping shaped for ``cfg``, a :class:`ModelConfig`.

    Catches e.g. ``cfg=None``, ``generate(cfg, params, ...)`` (swapped) or the
    parameters of another model before any tracing.  Shapes only (static, so
    traced parameters pass too); extra entries are ignored.

    Raises:
      TypeError: ``cfg`` not a ModelConfig (checked first) or ``params`` not a mapping.
      ValueError: an entry of :func:`param_shapes` missing from ``params`` or
        shaped differently (named by its path, e.g. ``layers/wq``).
    """
    swapped = " (the order is params, cfg: swapped?)" if isinstance(params, ModelConfig) else ""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig (e.g. load_model(...).cfg), got {type(cfg).__name__}{swapped}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be the parameter dict (load_model(...).params or Decoder.params()), "
                        f"got {type(params).__name__}{swapped}")
    _check_param_shapes(params, param_shapes(cfg))


def _check_param_shapes(tree, shapes: dict, prefix: str = "") -> None:
    """ValueError naming the path of the first entry of ``shapes`` missing from ``tree`` or shaped differently."""
    for name, shape in shapes.items():
        if not isinstance(tree, Mapping) or name not in tree:
            raise ValueError(f"params has no {prefix}{name} (this cfg's parameters: param_shapes(cfg))")
        if isinstance(shape, dict):
            _check_param_shapes(tree[name], shape, f"{prefix}{name}/")
        elif tuple(getattr(tree[name], "shape", ())) != shape:
            raise ValueError(f"params {prefix}{name} has shape {getattr(tree[name], 'shape', None)}, "
                             f"expected {shape} for this cfg (another model's parameters?)")


def check_int(name: str, value, least: int, most: int | None = None, note: str = "") -> int:
    """``value`` as an int if it is a Python / NumPy integer (not a bool, not a float) in ``[least, most]``.

    The shared check of static sizes (``budget``, ``batch``).

    Raises:
      ValueError: naming ``name`` and the allowed range (followed by ``note``).
    """
    if not _is_int(value) or value < least or (most is not None and value > most):
        allowed = f"in [{least}, {most}]" if most is not None else f">= {least}"
        kind = " (a Python int: it sets array shapes, so it cannot be a jax array)" if isinstance(value, jax.Array) else ""
        raise ValueError(f"{name} must be an integer {allowed}{note}{kind}, got {value!r}")
    return int(value)


def check_prompt_arrays(tokens, key_valid) -> None:
    """ValueError unless ``tokens`` is a non-empty integer ``[batch, T]`` array and ``key_valid`` a bool one of its shape.

    Shared by :func:`prefill` and :func:`longflow_jax.decode_loop.start`; checks
    shapes and dtypes only (static, so it works on traced arrays too).
    """
    for name, x in (("tokens", tokens), ("key_valid", key_valid)):
        if getattr(x, "ndim", None) != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            shape = f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else ""
            raise ValueError(f"{name} must be a non-empty [batch, T] array (jnp/np), got "
                             f"{type(x).__name__}{shape}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
    if key_valid.dtype != jnp.bool_ or key_valid.shape != tokens.shape:
        raise ValueError(f"key_valid must be a bool array of tokens' shape {tuple(tokens.shape)} (False at "
                         f"padding), got {key_valid.dtype} {tuple(key_valid.shape)}")


def _check_buffer(buffer, params, cfg: ModelConfig) -> None:
    """A :class:`KVBuffer` that fits ``cfg`` and the parameters' dtype (static checks)."""
    if not isinstance(buffer, KVBuffer):
        raise TypeError(f"buffer must be a KVBuffer (e.g. DecodeState.buffer), got {type(buffer).__name__}")
    k = buffer.k
    expected = f"[layers={cfg.num_layers}, batch, kv_heads={cfg.num_kv_heads}, budget, head_dim={cfg.head_dim}]"
    if (k.ndim != 5 or buffer.v.shape != k.shape or (k.shape[0], k.shape[2], k.shape[4])
            != (cfg.num_layers, cfg.num_kv_heads, cfg.head_dim)
            or buffer.valid.shape != (k.shape[0], k.shape[1], k.shape[3])):
        raise ValueError(f"buffer does not fit cfg: k and v must be {expected} and valid [layers, batch, "
                         f"budget]; got k {tuple(k.shape)}, v "
                         f"{tuple(buffer.v.shape)}, valid {tuple(buffer.valid.shape)}")
    compute = jnp.dtype(params["layers"]["attn_norm"].dtype)  # K, V come out in the normed input's dtype (layers.qkv_projection)
    if k.dtype != compute or buffer.v.dtype != compute:
        raise ValueError(f"buffer K/V dtype ({k.dtype}, {buffer.v.dtype}) must be the parameters' dtype "
                         f"({compute}): build it from the same params (start / prefill) or with "
                         f"empty_buffer(cfg, batch, budget, {compute.name})")


def param_shapes(cfg: ModelConfig) -> dict:
    """Shapes of every parameter, as a nested dict mirroring the pytree."""
    e, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    qd, kvd = cfg.num_q_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    lay = {
        "attn_norm": (n, e), "wq": (n, e, qd), "wk": (n, e, kvd), "wv": (n, e, kvd), "wo": (n, qd, e),
        "mlp_norm": (n, e), "w_gate": (n, e, f), "w_up": (n, e, f), "w_down": (n, f, e),
    }
    if cfg.qkv_bias:
        lay.update(bq=(n, qd), bk=(n, kvd), bv=(n, kvd))
    if cfg.o_bias:
        lay["bo"] = (n, e)
    if cfg.qk_norm:
        lay.update(q_norm=(n, cfg.head_dim), k_norm=(n, cfg.head_dim))
    shapes = {"embed": (cfg.vocab_size, e), "final_norm": (e,), "layers": lay}
    if not cfg.tie_word_embeddings:
        shapes["lm_head"] = (e, cfg.vocab_size)
    return shapes


class Decoder(nnx.Module):
    """Llama-family decoder parameters as an ``nnx`` module (stacked layers).

    Args:
      cfg: model configuration.
      rngs: ``nnx.Rngs`` for random initialisation (normal, std 0.02; norms 1 + 0.1 N(0, 1)).
      dtype: parameter dtype, ``jnp.float32`` or ``jnp.bfloat16``.
      params: optional nested dict of arrays (e.g. from a checkpoint) with the
        shapes of :func:`param_shapes`; used instead of random values.

    Raises:
      ValueError: a given parameter is missing or has the wrong shape.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs | None = None, dtype=jnp.float32,
                 params: dict | None = None):
        self.cfg = cfg
        shapes = param_shapes(cfg)
        if params is None:
            rngs = rngs if rngs is not None else nnx.Rngs(0)
            params = _random_params(shapes, rngs, dtype)
        _check_param_shapes(params, shapes)
        self.embed = nnx.Param(jnp.asarray(params["embed"], dtype))
        self.final_norm = nnx.Param(jnp.asarray(params["final_norm"], dtype))
        if not cfg.tie_word_embeddings:
            self.lm_head = nnx.Param(jnp.asarray(params["lm_head"], dtype))
        self.layers = nnx.Dict({name: nnx.Param(jnp.asarray(params["layers"][name], dtype))
                                for name in shapes["layers"]})

    def params(self) -> dict:
        """The parameters as a plain nested dict of arrays (the pytree the pure functions take)."""
        out = {"embed": self.embed[...], "final_norm": self.final_norm[...],
               "layers": {k: v[...] for k, v in self.layers.items()}}
        if not self.cfg.tie_word_embeddings:
            out["lm_head"] = self.lm_head[...]
        return out


def _random_params(shapes: dict, rngs: nnx.Rngs, dtype) -> dict:
    def make(name, shape):
        if "norm" in name:
            return jnp.ones(shape, dtype) + 0.1 * jax.random.normal(rngs.params(), shape, dtype)
        return 0.02 * jax.random.normal(rngs.params(), shape, dtype)

    out = {k: make(k, s) for k, s in shapes.items() if k != "layers"}
    out["layers"] = {k: make(k, s) for k, s in shapes["layers"].items()}
    return out


# ----------------------------------------------------------------------------- prefill


def _prefill_attention(q, k, v, key_valid, scale):
    """Causal attention over the prompt, padding masked.  q ``[B,T,Hq,D]``, k/v ``[B,T,Hkv,D]``."""
    b, t, hq, d = q.shape
    hkv = k.shape[2]
    qg = q.reshape(b, t, hkv, hq // hkv, d)
    precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
    logits = jnp.einsum("bqkgd,bskd->bkgqs", qg, k, precision=precision,
                        preferred_element_type=jnp.float32) * scale
    causal = jnp.tril(jnp.ones((t, t), bool))
    mask = causal[None, None, None] & key_valid[:, None, None, None, :]
    logits = jnp.where(mask, logits, _MASK_VALUE)
    p = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bkgqs,bskd->bqkgd", p.astype(v.dtype), v, precision=precision,
                     preferred_element_type=jnp.float32)
    return out.reshape(b, t, hq, d).astype(q.dtype), p


def prefill(params: dict, tokens: jax.Array, key_valid: jax.Array, *, cfg: ModelConfig, budget: int,
            per_kv_head: bool = False):
    """Run the prompt and fill a KV buffer of ``budget`` slots.

    Args:
      params: parameter pytree (``Decoder.params()``).
      tokens: ``[batch, T]`` int32 prompt ids, left-padded (padding first:
        the last position must be every row's last prompt token; this is not
        checked inside jit).
      key_valid: ``[batch, T]`` bool, False at padding.
      cfg: model configuration (static).
      budget: slots per layer (static), an integer >= 2.  If ``T <= budget - 1`` every
        prompt position is kept; otherwise SnapKV keeps ``budget - 1``
        positions per (layer, sequence), so the first decode step always has
        a free slot.
      per_kv_head: static; lay the buffer out for per-KV-head eviction
        (``position`` and ``next_slot`` get a ``kv_heads`` axis).  The prompt's
        SnapKV selection is shared by the heads either way.

    Returns:
      logits: ``[batch, vocab]`` float32 at the last prompt position.
      buffer: :class:`KVBuffer` with ``budget`` slots.

    Raises:
      TypeError: ``params`` not a parameter dict or ``cfg`` not a ModelConfig.
      ValueError: (at trace time) ``tokens`` not a non-empty integer ``[batch,
        T]`` array, ``key_valid`` not a bool array of its shape, ``budget``
        not a Python / NumPy integer >= 2 (``8.0`` is refused: it is a static
        size).
    """
    check_params_cfg(params, cfg)
    check_prompt_arrays(tokens, key_valid)
    budget = check_int("budget", budget, 2, note=" (slots per layer: at least one for the next token)")
    b, t = tokens.shape
    positions = jnp.maximum(jnp.cumsum(key_valid.astype(jnp.int32), axis=1) - 1, 0)
    inv_freq = L.rope_inv_freq(cfg)
    scale = cfg.head_dim ** -0.5
    keep = budget - 1
    compress = t > keep
    w = snapkv_window_size(budget)
    x = params["embed"][tokens]

    def layer(x, lp):
        h = L.rms_norm(x, lp["attn_norm"], cfg.rms_norm_eps)
        q, k, v = L.qkv_projection(h, lp, cfg, positions, inv_freq)
        attn, p = _prefill_attention(q, k, v, key_valid, scale)
        x = x + L.output_projection(attn, lp, cfg)
        x = x + L.mlp(L.rms_norm(x, lp["mlp_norm"], cfg.rms_norm_eps), lp)
        k = k.transpose(0, 2, 1, 3)  # [B, Hkv, T, D]
        v = v.transpose(0, 2, 1, 3)
        if compress:
            votes = jnp.sum(p[:, :, :, t - w:, :], axis=(1, 2, 3))  # [B, T]
            kept = snapkv_select(votes, key_valid, keep)  # [B, keep]
            k = jnp.take_along_axis(k, kept[:, None, :, None], axis=2)
            v = jnp.take_along_axis(v, kept[:, None, :, None], axis=2)
            valid = jnp.take_along_axis(key_valid, kept, axis=1)
            pos = jnp.take_along_axis(positions, kept, axis=1)
            n = keep
        else:
            valid, pos, n = key_valid, positions, t
        pad = budget - n
        k = jnp.pad(k, ((0, 0), (0, 0), (0, pad), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, 0), (0, pad), (0, 0)))
        valid = jnp.pad(valid, ((0, 0), (0, pad)))
        pos = jnp.where(valid, jnp.pad(pos, ((0, 0), (0, pad))), -1)
        next_slot = select_eviction_slot(jnp.zeros(valid.shape, jnp.float32), valid)
        pos = pos.astype(jnp.int32)
        if per_kv_head:
            heads = cfg.num_kv_heads
            pos = jnp.broadcast_to(pos[:, None], (b, heads, budget))
            next_slot = jnp.broadcast_to(next_slot[:, None], (b, heads))
        return x, (k, v, valid, pos, next_slot)

    x, (k, v, valid, pos, next_slot) = jax.lax.scan(layer, x, params["layers"])
    logits = L.lm_logits(x[:, -1], params, cfg)
    return logits, KVBuffer(k=k, v=v, valid=valid, position=pos, next_slot=next_slot)


# ----------------------------------------------------------------------------- decode


def decode_step(params: dict, buffer: KVBuffer, token: jax.Array, position: jax.Array, *,
                cfg: ModelConfig, attn_impl: str = "auto"):
    """One decode step: write ``token`` into each layer's chosen slot, attend, choose the next slot.

    Per layer (LongFlow, arXiv 2603.11504, Sec. 3): the token's K/V are
    scattered into ``buffer.next_slot``; attention runs over all valid slots;
    the attention kernel also returns each slot's importance
    ``sum_h p[h,s] * ||v_s||_1 / (Hq * D)`` and its argmin (invalid slots
    first, lowest index on ties), which becomes the layer's ``next_slot``.
    With a per-KV-head buffer (``buffer.per_kv_head``) each KV head sums over
    its own query group and evicts its own slot.

    Args:
      params: parameter pytree.
      buffer: :class:`KVBuffer`.
      token: ``[batch]`` int32 input token.
      position: ``[batch]`` int32 its position in the sequence (RoPE).
      cfg: model configuration (static).
      attn_impl: ``"auto" | "xla" | "triton" | "mosaic"`` (static), see
        :func:`pallas_kernels.longflow_decode_attention`.

    Returns:
      logits ``[batch, vocab]`` float32 and the updated buffer.

    Raises:
      TypeError: ``params`` not a parameter dict, ``buffer`` not a KVBuffer or
        ``cfg`` not a ModelConfig.
      ValueError: (at trace time) ``params`` not shaped for ``cfg`` (named by
        path); ``buffer`` not shaped for ``cfg`` (layers,
        KV heads, head_dim) or its K/V dtype not the parameters' dtype (e.g. a
        bfloat16 buffer with float32 parameters); ``token`` or ``position``
        not an integer ``[batch]`` array matching the buffer's batch; for
        NumPy arrays, a ``token`` outside ``[0, vocab)`` or a negative
        ``position``.  jax arrays are not read back (that would stall the
        device) and traced values cannot be: their ids must lie in
        ``[0, vocab)`` (an id >= vocab reads the last embedding row, a negative
        one counts from the end, as in NumPy indexing).
    """
    check_params_cfg(params, cfg)
    _check_buffer(buffer, params, cfg)
    batch = buffer.k.shape[1]
    for name, x in (("token", token), ("position", position)):
        if getattr(x, "shape", None) != (batch,) or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(f"{name} must be an integer array of shape [batch] = ({batch},) (the buffer's "
                             f"batch), got {getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', x)!r}")
    for name, x, low, high in (("token", token, 0, cfg.vocab_size), ("position", position, 0, 2**31)):
        if isinstance(x, np.ndarray) and (x.min() < low or x.max() >= high):  # host data only: reading
            raise ValueError(f"{name} must hold values in [{low}, {high}), got values in "  # a device array
                             f"[{x.min()}, {x.max()}]")  # back would stall the device
    inv_freq = L.rope_inv_freq(cfg)
    scale = cfg.head_dim ** -0.5
    x = params["embed"][token]  # [B, E]

    def layer(carry, xs):
        x, buf = carry
        lp, i = xs
        h = L.rms_norm(x, lp["attn_norm"], cfg.rms_norm_eps)
        q, k, v = L.qkv_projection(h, lp, cfg, position, inv_freq)  # [B, H, D]
        buf = write_token(buf, i, k, v, position)
        attn, next_slot = longflow_decode_attention(
            q, buf.k, buf.v, buf.valid, scale=scale, layer=i, impl=attn_impl,
            per_kv_head=buf.per_kv_head)
        buf = buf.replace(next_slot=buf.next_slot.at[i].set(next_slot))
        x = x + L.output_projection(attn, lp, cfg)
        x = x + L.mlp(L.rms_norm(x, lp["mlp_norm"], cfg.rms_norm_eps), lp)
        return (x, buf), None

    # The buffer rides in the scan carry and every layer updates and reads it
    # in place (write_token scatters into the stacked arrays; the attention
    # reads layer i of them).  As scan xs/ys instead, XLA re-stacked each
    # layer's K/V into a new array every step: a full copy of the cache per
    # token (benchmarks/NOTES.md, "decode step").
    layer_ids = jnp.arange(cfg.num_layers, dtype=jnp.int32)
    (x, buffer), _ = jax.lax.scan(layer, (x, buffer), (params["layers"], layer_ids))
    logits = L.lm_logits(x, params, cfg)
    return logits, buffer


def empty_buffer(cfg: ModelConfig, batch: int, budget: int, dtype, per_kv_head: bool = False) -> KVBuffer:
    """An all-empty :class:`KVBuffer` (every slot invalid), e.g. to decode without a prompt or to trace shapes.

    Args:
      cfg: model configuration.
      batch: sequences, an integer >= 1.
      budget: slots per layer, an integer >= 2 (as for :func:`prefill`).
      dtype: K/V dtype, float32, bfloat16 or float16 (name or dtype object);
        :func:`decode_step` needs the parameters' dtype.
      per_kv_head: lay the buffer out for per-KV-head eviction.

    Returns:
      ``KVBuffer`` with ``k``, ``v`` ``[layers, batch, kv_heads, budget,
      head_dim]`` zeros of ``dtype``; ``valid`` ``[layers, batch, budget]``
      bool, all False; ``position`` int32, all -1, ``[layers, batch,
      budget]`` (``[layers, batch, kv_heads, budget]`` if ``per_kv_head``);
      ``next_slot`` int32 zeros ``[layers, batch]`` (``[layers, batch,
      kv_heads]``).

    Raises:
      TypeError: ``cfg`` not a ModelConfig, ``dtype`` not a dtype,
        ``per_kv_head`` not a bool.
      ValueError: ``batch`` or ``budget`` not an integer in range (``8.0`` is
        refused), ``dtype`` not one of the float dtypes above.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig (e.g. load_model(...).cfg), got {type(cfg).__name__}")
    batch = check_int("batch", batch, 1)
    budget = check_int("budget", budget, 2, note=" (slots per layer)")
    if not isinstance(per_kv_head, (bool, np.bool_)):
        raise TypeError(f"per_kv_head must be a bool, got {type(per_kv_head).__name__}")
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a float dtype (float32, bfloat16 or float16), got {dtype!r}") from e
    if dt not in BUFFER_DTYPES:
        raise ValueError(f"dtype must be float32, bfloat16 or float16 (the K/V dtype), got {dt.name}")
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, budget, cfg.head_dim)
    heads = (cfg.num_kv_heads,) if per_kv_head else ()
    return KVBuffer(
        k=jnp.zeros(shape, dt), v=jnp.zeros(shape, dt),
        valid=jnp.zeros((cfg.num_layers, batch, budget), bool),
        position=jnp.full((cfg.num_layers, batch, *heads, budget), -1, jnp.int32),
        next_slot=jnp.zeros((cfg.num_layers, batch, *heads), jnp.int32),
    )
