"""The embedded SmolLM2-135M-Instruct (GGUF) against transformers' PyTorch model on the same file."""

from __future__ import annotations

import numpy as np
import pytest

from longflow_jax.generation import generate

pytestmark = pytest.mark.slow

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?")


@pytest.fixture(scope="module")
def hf_gguf():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from longflow_jax.loading import default_model_path

    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    return tok, model


def _chat_ids(tok, text):
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return tok(rendered, add_special_tokens=False)["input_ids"]


def test_torch_free_tokenizer_matches_transformers(smollm2, hf_gguf):
    ref_tok, _ = hf_gguf
    for text in (QUESTION, "Ünïcödé ∑ x² — 12,345.67 tokens\n\ttabs", "def f(x):\n    return x**2  # ok"):
        assert _chat_ids(smollm2.tokenizer, text) == _chat_ids(ref_tok, text)
        assert smollm2.tokenizer(text)["input_ids"] == ref_tok(text)["input_ids"]
    assert smollm2.tokenizer.eos_token_id in smollm2.stop_ids


@pytest.fixture(scope="module")
def full_cache_run(smollm2):
    ids = _chat_ids(smollm2.tokenizer, QUESTION)
    return ids, generate(smollm2.params, smollm2.cfg, [ids], max_new_tokens=64, policy="full", attn_impl="xla")


def test_greedy_full_cache_matches_transformers_for_64_tokens(full_cache_run, hf_gguf):
    """Our fp32 greedy tokens are transformers' greedy tokens: at every step HF's argmax given our prefix is our token."""
    import torch

    _, ref_model = hf_gguf
    ids, res = full_cache_run
    ours = res.tokens[0]
    assert len(ours) == 64  # no early stop: the answer takes longer than 64 tokens
    with torch.no_grad():
        logits = ref_model(torch.tensor([ids + ours[:-1]])).logits[0, len(ids) - 1:].double()
    assert logits.argmax(-1).tolist() == ours
    ref_lp = torch.log_softmax(logits, -1).numpy()[np.arange(64), ours]
    np.testing.assert_allclose(res.logprobs[0], ref_lp, atol=2e-3)


def test_longflow_budget_128_generates_512_tokens(smollm2, full_cache_run):
    """The main job: 512 tokens through a 128-slot buffer; identical to the full cache until the buffer fills."""
    ids, full = full_cache_run
    exact = 128 - len(ids)  # tokens emitted before the buffer is full and the first eviction happens
    assert exact > 32
    res = generate(smollm2.params, smollm2.cfg, [ids], max_new_tokens=512, min_new_tokens=512, budget=128,
                   stop_ids=smollm2.stop_ids, attn_impl="xla")
    assert len(res.tokens[0]) == 512
    full_bytes_per_token = smollm2.cfg.kv_bytes_per_token(4)
    assert res.buffer_bytes < 1.1 * 128 * full_bytes_per_token
    assert res.tokens[0][:exact] == full.tokens[0][:exact]


def test_runtime_needs_no_torch():
    """Loading the GGUF (weights, tokenizer, chat template) and decoding work with PyTorch unimportable."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from longflow_jax import load_model, generate\n"
        "m = load_model()\n"
        "ids = m.tokenizer.apply_chat_template([{'role': 'user', 'content': 'Hi'}], add_generation_prompt=True,"
        " tokenize=False)\n"
        "ids = m.tokenizer(ids, add_special_tokens=False)['input_ids']\n"
        "r = generate(m.params, m.cfg, [ids], max_new_tokens=4, budget=64, attn_impl='xla')\n"
        "assert len(r.tokens[0]) >= 1 and 'torch' not in {k for k, v in sys.modules.items() if v is not None}\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_converted_checkpoint_keeps_weights_and_chat_template(smollm2, tmp_path):
    """GGUF -> Orbax checkpoint -> load: same arrays, same chat-template token ids, same stop ids."""
    import jax

    from longflow_jax.checkpointing import save_checkpoint
    from longflow_jax.loading import load_model

    back = load_model(save_checkpoint(smollm2, tmp_path / "smollm2"))
    assert back.cfg == smollm2.cfg and back.stop_ids == smollm2.stop_ids
    jax.tree.map(np.testing.assert_array_equal, back.params, smollm2.params)
    assert _chat_ids(back.tokenizer, QUESTION) == _chat_ids(smollm2.tokenizer, QUESTION)
