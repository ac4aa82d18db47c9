"""Platform checks for the compiled kernels: a clear error on the wrong backend.

A Pallas kernel compiles for one platform only (Triton for CUDA, Mosaic for
TPU).  Run on another backend, Pallas fails with its own message ("Only
interpret mode is supported on CPU backend"), which names neither our
argument nor the fix.  :func:`require_kernel_platform` checks an eager call at
once and tags a traced one, so that the check runs when the enclosing ``jit``
is lowered: only then is the target platform known (``jax.export`` may lower a
CPU-traced function for CUDA or TPU).
"""

from __future__ import annotations

import jax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from pallas_kernels._validation import _Tracer

# impl -> (jax.default_backend() name, lowering platforms, what to call it in messages)
KERNEL_PLATFORMS = {"triton": ("gpu", ("cuda",), "a CUDA GPU"),
                    "mosaic": ("tpu", ("tpu",), "a TPU")}


def _wrong_platform(impl: str, platform: str, how: str) -> ValueError:
    return ValueError(f"impl={impl!r} runs on {KERNEL_PLATFORMS[impl][2]}, but this call is {how} "
                      f"{platform!r}: use impl='auto' or 'xla', or interpret=True to run the "
                      f"kernel in Pallas' interpreter")


# Identity on its operand; its lowering checks the platforms being compiled for.
_require_platform_p = Primitive("longflow_require_kernel_platform")
_require_platform_p.def_impl(lambda x, *, impl: x)
_require_platform_p.def_abstract_eval(lambda x, *, impl: x)
batching.primitive_batchers[_require_platform_p] = (
    lambda args, dims, *, impl: (_require_platform_p.bind(*args, impl=impl), dims[0]))
ad.primitive_jvps[_require_platform_p] = (
    lambda primals, tangents, *, impl: (_require_platform_p.bind(*primals, impl=impl), tangents[0]))


def _require_platform_lowering(ctx, x, *, impl):
    allowed = KERNEL_PLATFORMS[impl][1]
    for platform in ctx.module_context.platforms:
        if platform not in allowed:
            raise _wrong_platform(impl, platform, "being compiled for")
    return [x]


mlir.register_lowering(_require_platform_p, _require_platform_lowering)


def require_kernel_platform(impl: str, q, *others, interpret=False):
    """Returns ``q`` unchanged after checking that kernel ``impl`` can run where it will.

    Args:
      impl: ``"triton"`` or ``"mosaic"``.
      q: the kernel's query array (any shape); under ``jit`` it is tagged
        with an identity primitive whose lowering performs the check.
      *others: the call's other array arguments; if any is traced, so is the call.
      interpret: a truthy value (Pallas interpret mode runs anywhere) skips the check.

    Raises:
      ValueError: an eager call (no traced argument) when ``jax.default_backend()``
        is not the kernel's, naming ``impl`` and the backend; under ``jit``, the
        same error when the function is lowered for another platform.
    """
    if interpret:
        return q
    if any(isinstance(x, _Tracer) for x in (q, *others)):
        return _require_platform_p.bind(q, impl=impl)
    backend = jax.default_backend()
    if backend != KERNEL_PLATFORMS[impl][0]:
        raise _wrong_platform(impl, backend, "running on backend")
    return q
