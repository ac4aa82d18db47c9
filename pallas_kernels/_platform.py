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

import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from pallas_kernels._validation import _Tracer

# impl -> (lowering platforms it compiles for, what to call them in messages)
KERNEL_PLATFORMS = {"triton": (("cuda",), "a CUDA GPU"), "mosaic": (("tpu",), "a TPU")}
_HINT = ("use longflow_decode_attention(..., impl='auto' or 'xla'), or interpret=True to run the "
         "kernel in Pallas' interpreter")


def _wrong_platform(impl: str, platform: str, how: str) -> ValueError:
    return ValueError(f"impl={impl!r} runs on {KERNEL_PLATFORMS[impl][1]}, but this call is {how} "
                      f"{platform!r}: {_HINT}")


def _device_platform(device) -> str:
    """The lowering platform name of ``device`` ("cpu", "cuda", "rocm", "tpu"), as jit uses it."""
    client = device.client
    name = getattr(client, "_raw_platform", None) or client.platform
    return "cuda" if name == "gpu" else name  # "gpu": an older name for the CUDA client


def _check_devices(impl: str, x) -> None:
    """Eager check: the devices holding the concrete array ``x`` must be the kernel's platform."""
    for device in x.devices():
        platform = _device_platform(device)
        if platform not in KERNEL_PLATFORMS[impl][0]:
            raise _wrong_platform(impl, platform, "running on")


def _check_lowering(impl: str, platforms) -> None:
    """Lowering check: one platform, the kernel's (Pallas kernels compile for one platform)."""
    platforms = tuple(platforms)
    if len(platforms) > 1:
        raise ValueError(f"impl={impl!r} is a Pallas kernel, which compiles for one platform at "
                         f"a time, but this function is being lowered for {platforms} together "
                         f"(e.g. jax.export with several platforms): export once per platform, "
                         f"or use longflow_decode_attention(..., impl='xla')")
    if platforms[0] not in KERNEL_PLATFORMS[impl][0]:
        raise _wrong_platform(impl, platforms[0], "being compiled for")


def _require_platform_impl(x, *, impl):
    _check_devices(impl, x)  # reached by eager transformations (e.g. vmap without jit)
    return x


# Identity on its operand; its lowering checks the platforms being compiled for.
_require_platform_p = Primitive("longflow_require_kernel_platform")
_require_platform_p.def_impl(_require_platform_impl)
_require_platform_p.def_abstract_eval(lambda x, *, impl: x)
batching.primitive_batchers[_require_platform_p] = (
    lambda args, dims, *, impl: (_require_platform_p.bind(*args, impl=impl), dims[0]))
ad.primitive_jvps[_require_platform_p] = (
    lambda primals, tangents, *, impl: (_require_platform_p.bind(*primals, impl=impl), tangents[0]))


def _require_platform_lowering(ctx, x, *, impl):
    _check_lowering(impl, ctx.module_context.platforms)
    return [x]


mlir.register_lowering(_require_platform_p, _require_platform_lowering)


def require_kernel_platform(impl: str, q, *others, interpret=False):
    """Returns ``q`` (as a jax.Array) after checking that kernel ``impl`` can run where it will.

    Args:
      impl: ``"triton"`` or ``"mosaic"``.
      q: the kernel's query array (any shape); under a transformation it is
        tagged with an identity primitive that performs the check when it is
        lowered (``jit``, ``jax.export``) or evaluated (eager ``vmap``).
      *others: the call's other array arguments; if any is traced, so is the call.
      interpret: a truthy value (Pallas interpret mode runs anywhere) skips the check.

    Raises:
      ValueError: naming ``impl`` and the platform, when the call runs eagerly
        on devices of another platform (checked at once, from the devices
        holding ``q``), or when the enclosing function is lowered for another
        platform or for several platforms together.
    """
    if interpret:
        return q
    if any(isinstance(x, _Tracer) for x in (q, *others)):
        return _require_platform_p.bind(q, impl=impl)
    q = jnp.asarray(q)  # NumPy input: placed as the kernel call would place it
    _check_devices(impl, q)
    return q
