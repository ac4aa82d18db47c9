"""The decoder's full decode step lowers with the fused kernel: CUDA (Triton) and TPU (Mosaic), one platform each.

Runs on CPU: ``jax.export`` lowers for a platform without needing its device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest
from jax import export

from longflow_jax.config import ModelConfig
from longflow_jax.model import decode_step, empty_buffer, param_shapes

CFG = ModelConfig(architecture="LlamaForCausalLM", vocab_size=256, hidden_size=128, intermediate_size=256,
                  num_layers=2, num_q_heads=4, num_kv_heads=2, head_dim=64, max_position_embeddings=1024)


def _abstract_args(dtype, batch=2, budget=256, per_kv_head=False):
    params = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, dtype), param_shapes(CFG),
                          is_leaf=lambda x: isinstance(x, tuple))
    buffer = jax.eval_shape(lambda: empty_buffer(CFG, batch, budget, dtype, per_kv_head=per_kv_head))
    token = jax.ShapeDtypeStruct((batch,), jnp.int32)
    return params, buffer, token, token


@pytest.mark.parametrize("platform, impl, marker, checks", [
    ("cuda", "triton", "__gpu$xla.gpu.triton", [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]),
    ("cuda", "auto", "__gpu$xla.gpu.triton", [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]),
    ("tpu", "mosaic", "tpu_custom_call", []),
    ("tpu", "auto", "tpu_custom_call", []),
])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_decode_step_exports_with_fused_kernel(platform, impl, marker, checks, dtype):
    step = jax.jit(functools.partial(decode_step, cfg=CFG, attn_impl=impl))
    exported = export.export(step, platforms=[platform], disabled_checks=checks)(*_abstract_args(dtype))
    text = exported.mlir_module()
    assert marker in text
    logits = exported.out_avals[0]
    assert logits.shape == (2, CFG.vocab_size) and logits.dtype == jnp.float32


@pytest.mark.parametrize("platform, marker, checks", [
    ("cuda", "__gpu$xla.gpu.triton", [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]),
    ("tpu", "tpu_custom_call", []),
])
def test_per_kv_head_decode_step_exports(platform, marker, checks):
    step = jax.jit(functools.partial(decode_step, cfg=CFG, attn_impl="auto"))
    exported = export.export(step, platforms=[platform], disabled_checks=checks)(
        *_abstract_args(jnp.bfloat16, per_kv_head=True))
    assert marker in exported.mlir_module()
    next_slot = exported.out_avals[-1]
    assert next_slot.shape == (CFG.num_layers, 2, CFG.num_kv_heads)
