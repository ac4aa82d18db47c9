"""SnapKV prompt compression at prefill, against HF's own attention probabilities."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

from longflow_jax.decode_loop import start


def _snapkv_reference(attentions, n, budget, window=32, pool=5):
    """Kept positions per layer from HF eager attentions ``[1, H, n, n]`` (SnapKV, arXiv 2404.14469 Sec. 4)."""
    keep = budget - 1
    w = min(window, keep)
    kept = []
    for a in attentions:
        votes = a[0, :, n - w:, : n - w].double().sum((0, 1)).numpy()
        padded = np.pad(votes, pool // 2)
        pooled = np.array([padded[i: i + pool].sum() / pool for i in range(len(votes))])
        top = np.argsort(-pooled, kind="stable")[: keep - w]
        kept.append(set(top.tolist()) | set(range(n - w, n)))
    return kept


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
