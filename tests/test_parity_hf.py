"""Logits parity with transformers' PyTorch models: prefill + 32 decode steps, full cache, fp32."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from longflow_jax.decode_loop import prompt_bucket, start
from longflow_jax.generation import generate
from longflow_jax.model import decode_step

STEPS = 32
_decode_step = jax.jit(decode_step, static_argnames=("cfg", "attn_impl"))


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _reference_logits(torch_model, rows):
    """HF logits for each left-padded row, with position ids counting real tokens only."""
    t = max(len(r) for r in rows)
    ids = np.zeros((len(rows), t), np.int64)
    mask = np.zeros((len(rows), t), np.int64)
    for i, r in enumerate(rows):
        ids[i, t - len(r):] = r
        mask[i, t - len(r):] = 1
    pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
    with torch.no_grad():
        out = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                          position_ids=torch.tensor(pos)).logits
    return out.double().numpy()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_prefill_and_decode_logits_match_transformers(tiny_models, arch, rng):
    import jax.numpy as jnp

    torch_model, m = tiny_models[arch]
    lens = (11, 6)  # second row left-padded
    prompts = [rng.integers(3, m.cfg.vocab_size, n).tolist() for n in lens]
    cont = rng.integers(3, m.cfg.vocab_size, (2, STEPS))

    t = prompt_bucket(max(lens))
    tokens = np.zeros((2, t), np.int32)
    valid = np.zeros((2, t), bool)
    for i, p in enumerate(prompts):
        tokens[i, t - len(p):] = p
        valid[i, t - len(p):] = True
    budget = t + STEPS  # full cache
    state = start(m.params, jnp.asarray(tokens), jnp.asarray(valid), STEPS, 0, cfg=m.cfg, budget=budget)
    ours = [np.asarray(state.logits)]
    buffer, position = state.buffer, np.array(lens, np.int32)
    for s in range(STEPS - 1):
        logits, buffer = _decode_step(m.params, buffer, jnp.asarray(cont[:, s], jnp.int32), jnp.asarray(position),
                                     cfg=m.cfg, attn_impl="xla")
        ours.append(np.asarray(logits))
        position = position + 1
    ours = np.stack(ours, 1)  # [2, STEPS, V]: logits after prompt, then after each fed token

    rows = [p + cont[i, : STEPS - 1].tolist() for i, p in enumerate(prompts)]
    ref = _reference_logits(torch_model, rows)
    for i, n in enumerate(lens):
        ref_i = ref[i, -STEPS:]  # positions n-1 .. n+STEPS-2 of row i (right-aligned)
        assert _rel(ours[i], ref_i) <= 1e-4, (arch, i, _rel(ours[i], ref_i))
    assert np.isfinite(ours).all()


def test_greedy_tokens_and_logprobs_match_transformers(tiny_models, rng):
    """The decode loop (sampling + chunks) gives HF's greedy tokens and log-probabilities."""
    torch_model, m = tiny_models["qwen3"]
    prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
    res = generate(m.params, m.cfg, [prompt], max_new_tokens=20, policy="full", chunk=8, attn_impl="xla")
    toks = res.tokens[0]
    assert len(toks) == 20
    ref = _reference_logits(torch_model, [prompt + toks[:-1]])[0, len(prompt) - 1:]
    assert (ref.argmax(-1) == np.array(toks)).all()
    ref_lp = torch.log_softmax(torch.tensor(ref), -1).numpy()[np.arange(20), toks]
    np.testing.assert_allclose(res.logprobs[0], ref_lp, rtol=0, atol=1e-4)


def test_bfloat16_decoder_tracks_fp32_reference(tiny_models, rng):
    """bf16 weights and activations: logits within bf16 accuracy of the fp32 reference."""
    import jax.numpy as jnp

    from longflow_jax.model import Decoder

    torch_model, m = tiny_models["qwen2"]
    params = Decoder(m.cfg, dtype=jnp.bfloat16, params=m.params).params()
    prompt = rng.integers(3, m.cfg.vocab_size, 12).tolist()
    cont = rng.integers(3, m.cfg.vocab_size, 8).tolist()
    res = generate(params, m.cfg, [prompt], max_new_tokens=8, policy="full", forced=[cont], attn_impl="xla")
    with torch.no_grad():
        ref = torch.log_softmax(torch_model(torch.tensor([prompt + cont])).logits[0, len(prompt) - 1: -1].double(), -1)
    ref_lp = ref.numpy()[np.arange(8), cont]
    assert np.abs(res.logprobs[0] - ref_lp).max() < 0.05
    assert np.abs(res.logprobs[0] - ref_lp).max() > 0  # really ran in bf16


@pytest.mark.parametrize("rope_scaling", [
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 64},
])
def test_scaled_rope_matches_transformers(rope_scaling, rng):
    """RoPE scaling read from an HF config: inverse frequencies equal transformers'
    ROPE_INIT_FUNCTIONS, and q/k rotated at far positions equal LlamaRotaryEmbedding's."""
    import jax.numpy as jnp
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    from longflow_jax.config import ModelConfig
    from longflow_jax.layers import apply_rope, rope_inv_freq

    hf = LlamaConfig(vocab_size=160, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                     rope_theta=10000.0, rope_scaling=dict(rope_scaling))
    cfg = ModelConfig.from_hf({**hf.to_dict(), "architectures": ["LlamaForCausalLM"]})
    assert (cfg.rope_type, cfg.rope_factor) == (rope_scaling["rope_type"], rope_scaling["factor"])
    ref_inv, _ = ROPE_INIT_FUNCTIONS[rope_scaling["rope_type"]](hf, "cpu")
    ours = rope_inv_freq(cfg)
    np.testing.assert_allclose(ours, ref_inv.numpy(), rtol=1e-6, atol=0)
    base = 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16)
    assert np.abs(ours / base - 1).max() > 0.5  # the scaling really changes the frequencies

    pos = rng.integers(0, 500, 12)
    x = rng.standard_normal((12, 4, 16)).astype(np.float32)  # [tokens, heads, head_dim]
    cos, sin = LlamaRotaryEmbedding(hf)(torch.tensor(x), torch.tensor(pos[None]))
    t = torch.tensor(x).transpose(0, 1)[None]  # [1, heads, tokens, head_dim]
    ref, _ = apply_rotary_pos_emb(t, t, cos, sin)
    got = np.asarray(apply_rope(jnp.asarray(x), jnp.asarray(pos, jnp.int32), ours))
    np.testing.assert_allclose(got, ref[0].transpose(0, 1).numpy(), rtol=0, atol=1e-4)
