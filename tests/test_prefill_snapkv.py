"""SnapKV prompt compression at prefill, against HF's own attention probabilities."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

from longflow_jax.decode_loop import start


def _snapkv_reference(attentions, n, budget, window=32, pool=5):
    """Kept positions per layer from HF eager attentions ``[1, H, n, n]`` (SnapKV, arXiv 2404.14469 Sec. 4)."""
    w = min(window, budget - 1)
    return [_snapkv_from_votes(a[0, :, n - w:, : n - w].double().sum((0, 1)).numpy(), n, budget, window, pool)
            for a in attentions]


def _snapkv_from_votes(votes, n, budget, window=32, pool=5):
    """Kept positions of an unpadded ``n``-token row from the votes ``[n - w]`` its window casts on its prefix."""
    keep = budget - 1
    w = min(window, keep)
    padded = np.pad(np.asarray(votes, np.float64), pool // 2)
    pooled = np.array([padded[i: i + pool].sum() / pool for i in range(len(votes))])
    top = np.argsort(-pooled, kind="stable")[: keep - w]
    return set(top.tolist()) | set(range(n - w, n))


def test_long_prompt_keeps_snapkv_selection(tiny_models, rng):
    torch_model, m = tiny_models["llama"]
    n, budget = 64, 41  # bucket 64 (no padding), keep 40 = 8 voted + 32 window
    prompt = rng.integers(3, m.cfg.vocab_size, n)
    torch_model.config._attn_implementation = "eager"
    with torch.no_grad():
        out = torch_model(torch.tensor(prompt[None]), output_attentions=True)
    expected = _snapkv_reference(out.attentions, n, budget)
    state = start(m.params, jnp.asarray(prompt[None], jnp.int32), jnp.ones((1, n), bool), 8, 0,
                  cfg=m.cfg, budget=budget)
    buf = state.buffer
    valid = np.asarray(buf.valid)
    pos = np.asarray(buf.position)
    for l in range(m.cfg.num_layers):
        assert valid[l, 0].sum() == budget - 1
        assert set(pos[l, 0][valid[l, 0]].tolist()) == expected[l]
        assert not valid[l, 0, np.asarray(buf.next_slot)[l, 0]]  # the first decode step has a free slot
    # Last-position logits are computed over the whole prompt (compression only affects the cache).
    np.testing.assert_allclose(np.asarray(state.logits[0]), out.logits[0, -1].numpy(), rtol=1e-4, atol=1e-4)


def test_padded_rows_keep_all_real_tokens_and_no_padding(tiny_models, rng):
    _, m = tiny_models["qwen2"]
    t, budget = 32, 20
    tokens = rng.integers(3, m.cfg.vocab_size, (2, t)).astype(np.int32)
    valid = np.ones((2, t), bool)
    valid[1, : t - 12] = False  # row 1: 12 real tokens, fits in budget - 1
    state = start(m.params, jnp.asarray(tokens), jnp.asarray(valid), 8, 0, cfg=m.cfg, budget=budget)
    v = np.asarray(state.buffer.valid)
    pos = np.asarray(state.buffer.position)
    for l in range(m.cfg.num_layers):
        assert v[l, 0].sum() == budget - 1
        assert sorted(pos[l, 1][v[l, 1]].tolist()) == list(range(12))  # positions count real tokens only
        assert (pos[l][~v[l]] == -1).all()


def test_padded_rows_with_a_real_top_k_keep_each_unpadded_rows_selection(tiny_models, rng):
    """Rows left-padded by different amounts, each longer than budget - 1: every row keeps what SnapKV
    keeps on its own unpadded prompt (HF eager attentions), positions counting its real tokens."""
    torch_model, m = tiny_models["llama"]
    t, budget, lens = 64, 41, (45, 60)  # keep 40 = 8 voted (of 13 / 28 real prefix positions) + 32 window
    prompts = [rng.integers(3, m.cfg.vocab_size, n) for n in lens]
    tokens = np.zeros((2, t), np.int32)
    valid = np.zeros((2, t), bool)
    for i, p in enumerate(prompts):
        tokens[i, t - len(p):] = p
        valid[i, t - len(p):] = True
    torch_model.config._attn_implementation = "eager"
    expected = []
    for p in prompts:
        with torch.no_grad():
            out = torch_model(torch.tensor(p[None]), output_attentions=True)
        expected.append(_snapkv_reference(out.attentions, len(p), budget))
    state = start(m.params, jnp.asarray(tokens), jnp.asarray(valid), 8, 0, cfg=m.cfg, budget=budget)
    v = np.asarray(state.buffer.valid)
    pos = np.asarray(state.buffer.position)
    for l in range(m.cfg.num_layers):
        for i in range(2):
            assert v[l, i].sum() == budget - 1
            assert set(pos[l, i][v[l, i]].tolist()) == expected[i][l], (l, i)
        assert (pos[l][~v[l]] == -1).all()


def test_snapkv_never_keeps_padding_next_to_an_attention_sink(rng):
    """Padding scores no votes, but pooling spreads a heavily attended first token onto the padding
    just before it: a padded row must still keep only real positions, as SnapKV on the unpadded row.

    (The tiny random models attend almost uniformly, so the votes are drawn here: an attention
    sink on the first real token, as real LLMs have, and exponential votes elsewhere.)"""
    from longflow_jax.policies import snapkv_select

    t, budget, lens = 64, 41, (45, 60, 41)
    keep, w = budget - 1, 32
    votes = np.zeros((len(lens), t))
    for i, n in enumerate(lens):
        votes[i, t - n:] = rng.exponential(1.0, n)
        votes[i, t - n] = 200.0  # the sink; padding votes stay exactly 0 (masked keys)
    valid = np.arange(t)[None, :] >= (t - np.array(lens))[:, None]
    kept = np.asarray(snapkv_select(jnp.asarray(votes, jnp.float32), jnp.asarray(valid), keep))
    for i, n in enumerate(lens):
        expected = _snapkv_from_votes(votes[i, t - n: t - w], n, budget)
        assert sorted(kept[i].tolist()) == sorted(p + t - n for p in expected), i
        # The unmasked pooled scores would rank padding above real positions (what this checks).
        pooled = np.convolve(votes[i, : t - w], np.ones(5) / 5, mode="same")
        assert (np.argsort(-pooled, kind="stable")[: keep - w] < t - n).any()


def test_prefill_rejects_bad_shapes_and_budget(tiny_models):
    import pytest

    from longflow_jax.model import prefill

    _, m = tiny_models["qwen2"]
    tokens = jnp.ones((1, 16), jnp.int32)
    valid = jnp.ones((1, 16), bool)
    with pytest.raises(ValueError, match="key_valid must be a bool array of tokens' shape \\(1, 16\\)"):
        prefill(m.params, tokens, jnp.ones((1, 5), bool), cfg=m.cfg, budget=8)
    with pytest.raises(ValueError, match="tokens must be a non-empty \\[batch, T\\] array"):
        prefill(m.params, tokens[0], jnp.ones((16,), bool), cfg=m.cfg, budget=8)
    with pytest.raises(ValueError, match="budget must be an integer >= 2 \\(slots per layer.*got 1$"):
        prefill(m.params, tokens, valid, cfg=m.cfg, budget=1)
    # Early, named errors instead of jnp.pad's TypeError / the kernel's "valid must be bool" later on.
    with pytest.raises(ValueError, match="budget must be an integer >= 2 .*got 8.0"):
        prefill(m.params, tokens, valid, cfg=m.cfg, budget=8.0)
    with pytest.raises(ValueError, match="key_valid must be a bool array .*got int32"):
        prefill(m.params, tokens, valid.astype(jnp.int32), cfg=m.cfg, budget=8)
    with pytest.raises(ValueError, match="tokens must hold integer token ids, got dtype float32"):
        prefill(m.params, tokens.astype(jnp.float32), valid, cfg=m.cfg, budget=8)
