"""Public entry point: LongFlow decode attention on XLA, Triton (GPU) or Mosaic (TPU).

LongFlow (arXiv 2603.11504) keeps a fixed budget of ``slots`` KV-cache
entries while decoding long outputs.  Each step attends the new query over the
buffer and scores every slot by its contribution to the output (Sec. 3: the L1
norm of ``p[h, s] * v[s]`` summed over heads); the least important slot is
overwritten by the next token.  This module picks the implementation.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np

from pallas_kernels import mosaic_decode, triton_decode
from pallas_kernels._validation import validate_decode_args
from pallas_kernels.xla import longflow_attention_xla

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _triton_unsupported_reason(q, k) -> str | None:
    try:
        triton_decode.check_supported(q, k)
    except ValueError as err:
        return str(err)
    return None


def longflow_decode_attention(q, k, v, valid, *, scale, layer=None, impl="auto", per_kv_head=False,
                              return_importance=False, interpret=False):
    """One LongFlow decode step: attention output, eviction slot (and importance).

    Args:
      q: ``[batch, q_heads, head_dim]`` float32, bfloat16 (or float16, XLA only).
      k, v: ``[batch, kv_heads, slots, head_dim]`` in q's dtype; ``q_heads``
        must be a multiple of ``kv_heads`` (GQA; query head ``h`` reads KV
        head ``h // (q_heads // kv_heads)``); ``slots >= 1``.
      valid: ``[batch, slots]`` bool, True where a slot holds a token.  K at
        invalid slots is ignored; V there must be finite (``p = 0`` there, but
        ``0 * nan``, or an ``inf`` L1 norm of V, would still reach the output
        and the importance).  An empty or evicted slot of the decoder's
        buffer always holds finite values.  Values are not checked (they are
        traced): a non-finite value in q, or in K/V at a valid slot, can make
        that sequence's output and importance NaN or inf; its eviction slot is
        then meaningless, though still in ``[0, slots)`` (a NaN importance
        ranks first, as in ``jnp.argmin``).
      scale: positive Python float softmax scale (usually ``head_dim ** -0.5``).
      layer: None (default), or an int32 scalar, possibly traced (e.g. the
        layer counter of a ``lax.scan``).  Then ``k``/``v`` are a decoder's
        stacked buffer ``[layers, batch, kv_heads, slots, head_dim]`` and
        ``valid`` is ``[layers, batch, slots]``; layer ``layer`` is read in
        place, so a scan over layers that carries the buffer copies nothing.
        An out-of-range traced ``layer`` is clamped to ``[0, layers)`` by
        every impl (negative ones too: no wrap-around); one known at trace
        time (Python, NumPy or concrete JAX scalar) raises.
      impl: ``"auto"`` (default: one traced function that runs the Triton
        kernel on CUDA, the Mosaic kernel on TPU and plain XLA elsewhere,
        chosen per backend with ``jax.lax.platform_dependent``), ``"xla"``, ``"triton"``
        or ``"mosaic"``.
      per_kv_head: keep importance and eviction slot per KV head (sum over
        that head's query group only).
      return_importance: also return the per-slot importance.
      interpret: run the Pallas kernels in interpret mode (CPU testing).

    Returns:
      ``(out, slot)`` or ``(out, slot, importance)``:
      out ``[batch, q_heads, head_dim]`` in q's dtype (zeros for a sequence
      with no valid slot); slot int32 ``[batch]`` (``[batch, kv_heads]`` if
      per_kv_head): the least important slot, lowest index on ties, with
      every invalid slot ranked before every valid one; importance float32
      ``[batch, slots]`` (``[batch, kv_heads, slots]``), 0 at invalid slots.
      fp32 inputs give the same importance (to fp32 rounding) on every impl;
      with bf16 inputs the Triton kernel stores its per-head partials in bf16
      (extra memory traffic in all 3.4% instead of 6.5% of K+V at group 4,
      head_dim 128), so its importance is
      within ``2**-8`` relative of XLA's per slot and a near-tie may evict a
      different slot.

    Raises:
      ValueError: at trace time, for mismatched shapes or dtypes, q_heads not
        a multiple of kv_heads, zero slots, non-bool ``valid``, a bad ``impl``
        or ``scale``, or, with an explicit ``impl="triton"``/``"mosaic"``, a
        dtype/head_dim/group the kernel does not support (the message names
        the argument and the allowed values); a bad ``layer`` (not an
        integer scalar, a concrete one outside ``[0, layers)``, or ``valid``
        not ``[layers, batch, slots]``); zero batch, heads or head_dim.  With
        ``impl="auto"`` the kernel-support problems (dtype, head_dim, group;
        not shape errors) fall back to XLA instead, with a one-time
        RuntimeWarning when running on that kernel's backend.
        Not at trace time: a call with ``impl="triton"``/``"mosaic"`` without
        ``interpret=True`` on a platform other than the kernel's raises at once
        when eager (from the devices holding ``q``; also under an eager
        ``vmap``), and when the enclosing function is lowered (``jit``,
        ``jax.export``) for another platform; a function with a Pallas kernel
        (any impl but "xla") cannot be lowered for several platforms at once:
        export it once per platform.
      TypeError: ``per_kv_head``, ``return_importance`` or ``interpret`` not a bool.

    Differentiable with every ``impl``: the Pallas kernels define no
    derivative rules, so under ``jax.grad`` / ``jax.jvp`` / ``jax.vjp`` the
    XLA path (the same function) is differentiated and its values returned;
    without differentiation only the chosen kernel runs.
    """
    validate_decode_args(q, k, v, valid, scale=scale, impl=impl, layer=layer)
    for name, flag in (("per_kv_head", per_kv_head), ("return_importance", return_importance),
                       ("interpret", interpret)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    scale = float(scale)

    def run_xla(q, k, v, valid, layer):
        return longflow_attention_xla(q, k, v, valid, scale=scale, layer=layer,
                                      per_kv_head=per_kv_head)

    def run_triton(q, k, v, valid, layer):
        return triton_decode.longflow_attention_triton(
            q, k, v, valid, scale=scale, layer=layer, per_kv_head=per_kv_head,
            interpret=interpret)

    def run_mosaic(q, k, v, valid, layer):
        return mosaic_decode.longflow_attention_mosaic(
            q, k, v, valid, scale=scale, layer=layer, per_kv_head=per_kv_head,
            interpret=interpret)

    if impl == "xla":
        return _outputs(run_xla(q, k, v, valid, layer), return_importance)
    if impl == "triton":
        run_kernel = run_triton  # checks support and platform itself
    elif impl == "mosaic":
        run_kernel = run_mosaic  # checks its arguments and platform itself
    else:  # auto
        cuda_branch = run_triton
        reason = _triton_unsupported_reason(q, k)
        if reason is not None:
            cuda_branch = run_xla
            if jax.default_backend() == "gpu":
                _warn_once("triton:" + reason,
                           f"longflow_decode_attention: {reason}; falling back to XLA on GPU")
        tpu_branch = run_mosaic
        # platform_dependent traces every branch, so a Mosaic rejection
        # (e.g. an unsupported head_dim) must not break CPU/GPU tracing.
        try:
            jax.eval_shape(run_mosaic, q, k, v, valid, layer)
        except ValueError as err:
            tpu_branch = run_xla
            if jax.default_backend() == "tpu":
                _warn_once("mosaic:" + str(err),
                           f"longflow_decode_attention: {err}; falling back to XLA on TPU")

        def run_kernel(q, k, v, valid, layer):
            return jax.lax.platform_dependent(
                q, k, v, valid, layer, cuda=cuda_branch, tpu=tpu_branch, default=run_xla)

    result = _with_xla_derivatives(run_kernel, run_xla)(q, k, v, valid, layer)
    return _outputs(result, return_importance)


def _outputs(result, return_importance: bool):
    out, slot, importance = result
    if return_importance:
        return out, slot, importance
    return out, slot


def _with_xla_derivatives(run_kernel, run_xla):
    """``run_kernel`` (a Pallas path) whose JVP, hence gradient, is the XLA path's.

    Both compute the same function; the Pallas kernels define no derivative
    rules, so under ``jax.jvp`` / ``jax.grad`` / ``jax.vjp`` the XLA path is
    differentiated instead (and its values returned, so they match the
    derivatives).  Without differentiation only ``run_kernel`` runs.
    """
    @jax.custom_jvp
    def call(q, k, v, valid, layer):
        return run_kernel(q, k, v, valid, layer)

    @call.defjvp
    def call_jvp(primals, tangents):
        return jax.jvp(run_xla, primals, tangents)

    return call
