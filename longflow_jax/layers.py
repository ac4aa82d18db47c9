"""Stateless building blocks of a Llama-family decoder: RMSNorm, RoPE, MLP, projections.

Numerics follow transformers' ``modeling_llama.py`` / ``modeling_qwen3.py``:
RMSNorm normalises in fp32 and scales after casting back; RoPE rotates the two
halves of each head (``rotate_half``), not interleaved pairs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from longflow_jax.config import ModelConfig


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` with fp32 accumulation; fp32 inputs use full fp32 precision (no TF32)."""
    precision = jax.lax.Precision.HIGHEST if w.dtype == jnp.float32 else None
    return jnp.matmul(x.astype(w.dtype), w, precision=precision, preferred_element_type=jnp.float32)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """RMSNorm over the last axis; returns ``weight``'s dtype."""
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight * x32.astype(weight.dtype)


def rope_inv_freq(cfg: ModelConfig) -> np.ndarray:
    """RoPE inverse frequencies ``[head_dim // 2]`` float32, with HF's ``linear`` and ``llama3`` scaling.

    Source: transformers ``modeling_rope_utils._compute_default_rope_parameters``
    and ``_compute_llama3_parameters``.
    """
    d = cfg.head_dim
    # float32 throughout, as transformers computes it, so positions in the
    # thousands rotate by the same angles as the reference.
    inv = (1.0 / (np.float32(cfg.rope_theta) ** (np.arange(0, d, 2).astype(np.float32) / np.float32(d)))).astype(np.float32)
    if cfg.rope_type == "linear":
        inv = inv / cfg.rope_factor
    elif cfg.rope_type == "llama3":
        old = cfg.rope_original_max_position
        low_wl = old / cfg.rope_low_freq_factor
        high_wl = old / cfg.rope_high_freq_factor
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wl, inv / cfg.rope_factor, inv)
        smooth = (old / wavelen - cfg.rope_low_freq_factor) / (cfg.rope_high_freq_factor - cfg.rope_low_freq_factor)
        smoothed = (1 - smooth) * scaled / cfg.rope_factor + smooth * scaled
        medium = (wavelen >= high_wl) & (wavelen <= low_wl)
        inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotate ``x`` ``[..., heads, head_dim]`` by token ``positions`` ``[...]`` (int32)."""
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)  # [..., d/2]
    cos = jnp.cos(angles)[..., None, :]
    sin = jnp.sin(angles)[..., None, :]
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def mlp(x: jax.Array, lp: dict) -> jax.Array:
    """SwiGLU MLP: ``down(silu(gate(x)) * up(x))``."""
    gate = matmul(x, lp["w_gate"])
    up = matmul(x, lp["w_up"])
    return matmul((jax.nn.silu(gate) * up).astype(x.dtype), lp["w_down"]).astype(x.dtype)


def qkv_projection(h: jax.Array, lp: dict, cfg: ModelConfig, positions: jax.Array, inv_freq):
    """Project normed hidden states ``[..., hidden]`` to q ``[..., Hq, D]`` and k, v ``[..., Hkv, D]``.

    Applies bias (Qwen2), per-head q/k RMSNorm (Qwen3) and RoPE at ``positions``.
    """
    q = matmul(h, lp["wq"])
    k = matmul(h, lp["wk"])
    v = matmul(h, lp["wv"])
    if cfg.qkv_bias:
        q, k, v = q + lp["bq"], k + lp["bk"], v + lp["bv"]
    dtype = h.dtype
    lead = h.shape[:-1]
    q = q.astype(dtype).reshape(*lead, cfg.num_q_heads, cfg.head_dim)
    k = k.astype(dtype).reshape(*lead, cfg.num_kv_heads, cfg.head_dim)
    v = v.astype(dtype).reshape(*lead, cfg.num_kv_heads, cfg.head_dim)
    if cfg.qk_norm:
        q = rms_norm(q, lp["q_norm"], cfg.rms_norm_eps)
        k = rms_norm(k, lp["k_norm"], cfg.rms_norm_eps)
    q = apply_rope(q, positions, inv_freq)
    k = apply_rope(k, positions, inv_freq)
    return q, k, v


def output_projection(attn: jax.Array, lp: dict, cfg: ModelConfig) -> jax.Array:
    """``[..., Hq, D]`` attention output to ``[..., hidden]``."""
    out = matmul(attn.reshape(*attn.shape[:-2], cfg.num_q_heads * cfg.head_dim), lp["wo"])
    if cfg.o_bias:
        out = out + lp["bo"]
    return out.astype(attn.dtype)


def lm_logits(x: jax.Array, params: dict, cfg: ModelConfig) -> jax.Array:
    """Final norm and LM head: ``[..., hidden]`` -> fp32 logits ``[..., vocab]``."""
    h = rms_norm(x, params["final_norm"], cfg.rms_norm_eps)
    if cfg.tie_word_embeddings:
        precision = jax.lax.Precision.HIGHEST if params["embed"].dtype == jnp.float32 else None
        return jnp.einsum("...e,ve->...v", h, params["embed"], precision=precision,
                          preferred_element_type=jnp.float32)
    return matmul(h, params["lm_head"])
