"""jax.export of a jitted LongFlow decode step with the Triton kernel, for CUDA.

Runs on a CPU-only machine: export lowers Pallas to Triton IR inside an XLA
custom call without needing a GPU.  One platform per export (the TPU export
test lives in test_kernel_export_tpu.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import export

from pallas_kernels.api import longflow_decode_attention

TRITON_CALL = "__gpu$xla.gpu.triton"


def _args(dtype, batch=2, q_heads=32, kv_heads=8, slots=1000, head_dim=128):
    return (jax.ShapeDtypeStruct((batch, q_heads, head_dim), dtype),
            jax.ShapeDtypeStruct((batch, kv_heads, slots, head_dim), dtype),
            jax.ShapeDtypeStruct((batch, kv_heads, slots, head_dim), dtype),
            jax.ShapeDtypeStruct((batch, slots), jnp.bool_))


@pytest.mark.parametrize("impl,dtype", [("triton", jnp.bfloat16), ("triton", jnp.float32),
                                        ("auto", jnp.bfloat16)])
def test_export_triton_decode_step_for_cuda(impl, dtype):
    step = jax.jit(lambda q, k, v, valid: longflow_decode_attention(
        q, k, v, valid, scale=128 ** -0.5, impl=impl, return_importance=True))
    exported = export.export(
        step, platforms=["cuda"],
        disabled_checks=[export.DisabledSafetyCheck.custom_call(TRITON_CALL)],
    )(*_args(dtype))
    assert exported.platforms == ("cuda",)
    assert TRITON_CALL in exported.mlir_module()
    out, slot, imp = exported.out_avals
    assert out.shape == (2, 32, 128) and out.dtype == dtype
    assert slot.shape == (2,) and slot.dtype == jnp.int32
    assert imp.shape == (2, 1000) and imp.dtype == jnp.float32


def test_export_without_disabling_check_is_refused():
    """The Triton custom call is not export-stable: jax must refuse it by default."""
    step = jax.jit(lambda *a: longflow_decode_attention(*a, scale=0.1, impl="triton"))
    with pytest.raises(ValueError, match="custom call"):
        export.export(step, platforms=["cuda"])(*_args(jnp.bfloat16, slots=64))
