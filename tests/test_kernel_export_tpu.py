"""The Mosaic decode kernel lowers for TPU (no TPU needed: jax.export lowers only).

Exporting for ``platforms=["tpu"]`` runs the Pallas -> Mosaic lowering, so
block-shape, layout and scalar-prefetch mistakes that interpret mode cannot
see fail here.  One platform per export, as the kernel is TPU-only.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels.mosaic_decode import longflow_attention_mosaic  # noqa: E402


@pytest.mark.parametrize("batch, q_heads, kv_heads, head_dim, slots, dtype, per_kv_head", [
    (2, 8, 2, 128, 4096, jnp.bfloat16, False),
    (3, 9, 3, 64, 100, jnp.float32, True),
    (1, 32, 8, 128, 1000, jnp.float32, False),
    (4, 4, 1, 64, 16, jnp.bfloat16, True),
    (2, 16, 16, 256, 640, jnp.bfloat16, False),
])
def test_exports_for_tpu_with_mosaic_custom_call(batch, q_heads, kv_heads, head_dim, slots, dtype,
                                                per_kv_head, rng):
    q = jnp.asarray(rng.standard_normal((batch, q_heads, head_dim)), dtype)
    k = jnp.asarray(rng.standard_normal((batch, kv_heads, slots, head_dim)), dtype)
    v = jnp.asarray(rng.standard_normal((batch, kv_heads, slots, head_dim)), dtype)
    valid = jnp.asarray(rng.random((batch, slots)) < 0.7)

    def decode(q, k, v, valid):
        return longflow_attention_mosaic(q, k, v, valid, scale=head_dim ** -0.5,
                                         per_kv_head=per_kv_head)

    exported = jax.export.export(jax.jit(decode), platforms=["tpu"])(q, k, v, valid)
    mlir = exported.mlir_module()
    assert "tpu_custom_call" in mlir
    assert exported.platforms == ("tpu",)
    imp_shape = (batch, kv_heads, slots) if per_kv_head else (batch, slots)
    assert [a.shape for a in exported.out_avals] == [(batch, q_heads, head_dim), imp_shape[:-1], imp_shape]
    assert [a.dtype for a in exported.out_avals] == [jnp.dtype(dtype), jnp.int32, jnp.float32]
