"""Trace-time argument checks for ``longflow_decode_attention``.

Shapes and dtypes are static under ``jax.jit``, so these run in Python while
tracing, before any kernel is built, and fail with a ValueError that names
the offending argument and what is allowed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

try:  # public name; kept importable across jax versions
    from jax.core import Tracer as _Tracer
except ImportError:  # pragma: no cover
    from jax._src.core import Tracer as _Tracer

IMPLS = ("auto", "xla", "triton", "mosaic")
FLOAT_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def is_int(x) -> bool:
    """True for a Python or NumPy integer (not a bool): a static size or count."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_bool(x) -> bool:
    """True for a Python or NumPy bool: a static flag."""
    return isinstance(x, (bool, np.bool_))


def _check_layer(layer, k, valid) -> None:
    """Checks ``layer`` (int scalar) against the stacked buffer's leading axis."""
    layers = k.shape[0]
    if valid.shape[:1] != (layers,):
        raise ValueError(f"with layer=, valid must be [layers, batch, slots] with layers = "
                         f"{layers} (k's leading axis), got shape {tuple(valid.shape)}")
    shape = getattr(layer, "shape", ())
    dtype = getattr(layer, "dtype", None)
    if isinstance(layer, bool) or shape != () or (
            dtype is not None and not jnp.issubdtype(dtype, jnp.integer)) or (
            dtype is None and not isinstance(layer, int)):
        raise ValueError(f"layer must be an integer scalar, got {layer!r}")
    if not isinstance(layer, _Tracer) and not 0 <= int(layer) < layers:
        # Known now (Python, NumPy or concrete JAX scalar): out of range is an
        # error; only a traced index is clamped, as lax.dynamic_slice does.
        raise ValueError(f"layer must be in [0, {layers}) (k's leading axis), got {int(layer)}")


def validate_decode_args(q, k, v, valid, *, scale, impl, layer=None) -> None:
    """Checks shapes, dtypes and options; raises ValueError on the first problem.

    Args: as ``pallas_kernels.api.longflow_decode_attention``.  With ``layer``
    given, ``k``/``v``/``valid`` carry a leading ``layers`` axis, checked
    here and then dropped for the per-layer checks.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    stacked = layer is not None
    for name, x, ndim in (("q", q, 3), ("k", k, 4 + stacked), ("v", v, 4 + stacked),
                          ("valid", valid, 2 + stacked)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"{name} must be an array, got {type(x).__name__}")
        if x.ndim != ndim:
            what = " (layer= given: stacked [layers, ...] buffer)" if stacked else ""
            raise ValueError(f"{name} must have {ndim} dimensions{what}, got shape "
                             f"{tuple(x.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {tuple(k.shape)} "
                         f"and v {tuple(v.shape)}")
    if stacked:
        _check_layer(layer, k, valid)
        k = jax.ShapeDtypeStruct(k.shape[1:], k.dtype)
        v = jax.ShapeDtypeStruct(v.shape[1:], v.dtype)
        valid = jax.ShapeDtypeStruct(valid.shape[1:], valid.dtype)
    batch, q_heads, head_dim = q.shape
    kb, kv_heads, slots, kd = k.shape
    if kb != batch:
        raise ValueError(f"k batch ({kb}) must equal q batch ({batch})")
    if kd != head_dim:
        raise ValueError(f"k head_dim ({kd}) must equal q head_dim ({head_dim})")
    if slots == 0:
        raise ValueError("k/v must have at least one slot (slots dimension is 0)")
    if batch == 0 or head_dim == 0 or kv_heads == 0 or q_heads == 0:
        raise ValueError(f"q and k need non-empty batch, heads and head_dim; got q "
                         f"{tuple(q.shape)}, k {tuple(k.shape)}")
    if q_heads % kv_heads != 0:
        raise ValueError(f"q_heads ({q_heads}) must be a multiple of kv_heads ({kv_heads})")
    if tuple(valid.shape) != (batch, slots):
        raise ValueError(f"valid must have shape [batch, slots] = {(batch, slots)}, "
                         f"got {tuple(valid.shape)}")
    if jnp.dtype(valid.dtype) != jnp.dtype(bool):
        raise ValueError(f"valid must be bool, got {valid.dtype}")
    if jnp.dtype(q.dtype) not in FLOAT_DTYPES:
        raise ValueError(f"q.dtype must be float32 or bfloat16 (float16: impl='xla' only), "
                         f"got {q.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"k and v must have q's dtype {q.dtype}, got k {k.dtype}, v {v.dtype}")
    try:
        scale_ok = (not isinstance(scale, (bool, np.bool_, str, bytes)) and float(scale) > 0
                    and float(scale) != float("inf"))
    except (TypeError, ValueError):
        scale_ok = False
    if not scale_ok:
        raise ValueError(f"scale must be a positive finite Python float, got {scale!r}")
