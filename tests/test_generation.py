"""Decode loop: fixed memory, no recompilation, teacher forcing, HF sampling semantics, bad input."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from longflow_jax import decode_loop as L
from longflow_jax import generation as G
from longflow_jax.sampling import SamplingParams, apply_repetition_penalty, sample_token, warp_logits


def test_buffer_shape_does_not_depend_on_max_new_tokens(tiny_models):
    _, m = tiny_models["llama"]
    tokens = jnp.asarray(np.arange(3, 19, dtype=np.int32)[None])
    valid = jnp.ones((1, 16), bool)
    shapes = [jax.tree.map(jnp.shape, L.start(m.params, tokens, valid, n, 0, cfg=m.cfg, budget=32).buffer)
              for n in (100, 10_000)]
    assert shapes[0] == shapes[1]
    assert shapes[0].k == (m.cfg.num_layers, 1, m.cfg.num_kv_heads, 32, m.cfg.head_dim)


def test_generating_more_tokens_compiles_nothing_new(tiny_models, rng):
    _, m = tiny_models["qwen2"]
    prompt = [rng.integers(3, m.cfg.vocab_size, 10).tolist()]
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _secs, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None)
    G.generate(m.params, m.cfg, prompt, max_new_tokens=50, budget=12, attn_impl="xla")
    sizes = (L._start._cache_size(), L._decode_chunk._cache_size())
    before = len(compiles)
    res = G.generate(m.params, m.cfg, prompt, max_new_tokens=500, budget=12, attn_impl="xla")
    assert len(res.tokens[0]) == 500
    assert (L._start._cache_size(), L._decode_chunk._cache_size()) == sizes
    assert len(compiles) == before, compiles[before:]


@pytest.mark.parametrize("per_kv_head", [False, True])
def test_decode_chunk_never_copies_the_kv_buffer(tiny_models, per_kv_head):
    """The compiled decode loop updates the stacked KV buffer in place.

    Regression test for two copies of the whole cache per step that XLA once
    made: the layer scan used the buffer as scan xs/ys (re-stacked every step),
    and a ``lax.cond`` around the step returned the buffer from both branches.
    """
    _, m = tiny_models["llama"]
    tokens = jnp.ones((2, 16), jnp.int32)
    state = L.start(m.params, tokens, jnp.ones_like(tokens, bool), 8, 0, cfg=m.cfg, budget=64,
                    per_kv_head=per_kv_head)
    forced = jnp.full((2, 4), -1, jnp.int32)
    hlo = L.decode_chunk.lower(m.params, state, forced, SamplingParams.create(temperature=0.0),
                               cfg=m.cfg, attn_impl="xla").compile().as_text()
    k_shape = "f32[" + ",".join(map(str, state.buffer.k.shape)) + "]"
    assert k_shape in hlo  # the buffer is in the program under that name
    copies = re.findall(r"= " + re.escape(k_shape) + r"\S* copy(-start)?\(", hlo)
    assert copies == [], f"{len(copies)} copies of the whole K/V buffer per chunk"


def test_forced_decoding_logprobs_equal_generation_logprobs(tiny_models, rng):
    """Teacher forcing a sampled continuation reproduces its log-probabilities through the same evictions."""
    _, m = tiny_models["llama"]
    prompts = [rng.integers(3, m.cfg.vocab_size, n).tolist() for n in (12, 5)]
    sp = SamplingParams.create(temperature=1.0, top_k=20)
    gen = G.generate(m.params, m.cfg, prompts, max_new_tokens=40, budget=10, sampling=sp, seed=3, attn_impl="xla")
    scored = G.score_continuation(m.params, m.cfg, prompts, gen.tokens, budget=10, attn_impl="xla")
    for a, b in zip(scored, gen.logprobs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert all(np.all(lp < 0) for lp in scored)


def test_forced_decoding_matches_transformers_with_full_cache(tiny_models, rng):
    torch_model, m = tiny_models["qwen2"]
    prompt = rng.integers(3, m.cfg.vocab_size, 8).tolist()
    cont = rng.integers(3, m.cfg.vocab_size, 15).tolist()
    (ours,) = G.score_continuation(m.params, m.cfg, [prompt], [cont], policy="full", attn_impl="xla")
    with torch.no_grad():
        logits = torch_model(torch.tensor([prompt + cont])).logits[0, len(prompt) - 1: -1]
    ref = torch.log_softmax(logits.double(), -1).numpy()[np.arange(15), cont]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_sampling_is_seeded_and_stops_on_stop_tokens(tiny_models, rng):
    _, m = tiny_models["qwen3"]
    prompt = [rng.integers(3, m.cfg.vocab_size, 6).tolist()] * 2
    sp = SamplingParams.create(temperature=1.5)
    a = G.generate(m.params, m.cfg, prompt, max_new_tokens=30, budget=8, sampling=sp, seed=7, attn_impl="xla")
    b = G.generate(m.params, m.cfg, prompt, max_new_tokens=30, budget=8, sampling=sp, seed=7, attn_impl="xla")
    c = G.generate(m.params, m.cfg, prompt, max_new_tokens=30, budget=8, sampling=sp, seed=8, attn_impl="xla")
    assert a.tokens == b.tokens and a.tokens != c.tokens
    assert a.tokens[0] != a.tokens[1]  # rows draw independent samples
    stop = a.tokens[0][4]
    s = G.generate(m.params, m.cfg, prompt, max_new_tokens=30, budget=8, sampling=sp, seed=7,
                   stop_ids=(stop,), attn_impl="xla")
    first = a.tokens[0].index(stop)
    assert s.tokens[0] == a.tokens[0][: first + 1]  # stops right after the stop token, row 0
    m2 = G.generate(m.params, m.cfg, prompt, max_new_tokens=30, budget=8, sampling=sp, seed=7,
                    stop_ids=(stop,), min_new_tokens=30, attn_impl="xla")
    assert all(len(t) == 30 and stop not in t for t in m2.tokens)


def test_a_stop_token_ends_only_its_own_row(tiny_models, rng):
    """Greedy, two different prompts: the stop id is a token row 0 emits at step k and row 1 does not
    emit up to step k + 1; row 0 ends right after it, row 1 runs on to its own first stop (if any)."""
    _, m = tiny_models["qwen3"]
    kw = dict(max_new_tokens=30, budget=8, attn_impl="xla")
    for _ in range(20):
        prompts = [rng.integers(3, m.cfg.vocab_size, 6).tolist() for _ in range(2)]
        plain = G.generate(m.params, m.cfg, prompts, **kw).tokens
        steps = [k for k in range(2, 25) if plain[0][k] not in plain[0][:k] + plain[1][: k + 2]]
        if steps:
            break
    assert steps, "no prompt pair where row 0 emits a token row 1 does not"
    k = steps[0]
    stop = plain[0][k]
    res = G.generate(m.params, m.cfg, prompts, stop_ids=(stop,), **kw).tokens
    assert res[0] == plain[0][: k + 1]
    expected = plain[1][: plain[1].index(stop) + 1] if stop in plain[1] else plain[1]
    assert res[1] == expected and len(res[1]) > k + 1  # row 1 kept going past row 0's stop


def test_min_new_tokens_suppresses_stop_ids_for_exactly_that_many_tokens(tiny_models, rng):
    """HF MinNewTokensLengthLogitsProcessor: with k tokens emitted, a stop id is masked iff
    k < min_new_tokens.  The greedy run's token at step k (new there) is made the stop id:
    min_new_tokens=k lets the row stop at step k; min_new_tokens=k+1 masks it there, so step k
    emits the argmax of HF's logits with the stop id masked by HF's processor."""
    from transformers.generation.logits_process import MinNewTokensLengthLogitsProcessor

    torch_model, m = tiny_models["qwen3"]
    prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
    greedy = G.generate(m.params, m.cfg, [prompt], **_E2E).tokens[0]
    k = max(i for i in range(0, 19) if greedy[i] not in greedy[:i])  # greedy[0] is always new
    stop = greedy[k]
    early = G.generate(m.params, m.cfg, [prompt], stop_ids=(stop,), min_new_tokens=k, **_E2E).tokens[0]
    assert early == greedy[: k + 1]
    late = G.generate(m.params, m.cfg, [prompt], stop_ids=(stop,), min_new_tokens=k + 1, **_E2E).tokens[0]
    assert late[:k] == greedy[:k] and late[k] != stop
    logits = torch.tensor(_hf_logits(torch_model, prompt, greedy[: k + 1])[k:])  # step k, fed greedy[:k]
    proc = MinNewTokensLengthLogitsProcessor(len(prompt), k + 1, stop)
    masked = proc(torch.tensor([prompt + greedy[:k]]), logits)[0].numpy()
    assert np.isneginf(masked[stop]) and np.isfinite(np.delete(masked, stop)).all()
    assert late[k] == int(np.argmax(masked))
    assert np.sort(masked)[-1] - np.sort(masked)[-2] > 1e-4  # not a near tie


def test_warpers_match_transformers_logits_processors(rng):
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    logits = rng.normal(size=(4, 300)).astype(np.float32) * 3
    ids = rng.integers(0, 300, (4, 25))
    seen = np.zeros((4, 300), bool)
    np.put_along_axis(seen, ids, True, axis=1)
    for temperature, top_k, top_p, penalty in [(0.7, 0, 0.9, 1.3), (1.3, 17, 1.0, 0.8), (1.0, 50, 0.5, 1.0)]:
        sp = SamplingParams.create(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=penalty)
        ours = np.asarray(warp_logits(apply_repetition_penalty(jnp.asarray(logits), jnp.asarray(seen),
                                                               sp.repetition_penalty), sp))
        t = torch.tensor(logits)
        inp = torch.tensor(ids)
        t = RepetitionPenaltyLogitsProcessor(penalty)(inp, t)
        t = TemperatureLogitsWarper(temperature)(inp, t)
        if top_k:
            t = TopKLogitsWarper(top_k)(inp, t)
        if top_p < 1:
            t = TopPLogitsWarper(top_p)(inp, t)
        ref = t.numpy()
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        # Same sampling distribution: ours are shifted by each row's max (warp_logits).
        log_p = lambda x: x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)  # noqa: E731
        np.testing.assert_allclose(log_p(ours)[~np.isinf(ours)], log_p(ref)[~np.isinf(ref)],
                                   rtol=1e-5, atol=1e-5)
        assert (~np.isinf(ours)).sum() > 4


def test_repetition_penalty_on_both_signs_matches_transformers(rng):
    """Seen tokens: positive logits divided by the penalty, negative ones multiplied (both move away
    from likely for penalty > 1, towards it for penalty < 1), as HF's RepetitionPenaltyLogitsProcessor;
    checked on the logits themselves and through the warpers with no filter (top_k=0, top_p=1), where
    the negative logits keep probability mass (the filtered warper test above removes them)."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper

    logits = rng.normal(size=(4, 300)).astype(np.float32) * 3
    ids = rng.integers(0, 300, (4, 40))
    seen = np.zeros((4, 300), bool)
    np.put_along_axis(seen, ids, True, axis=1)
    assert (logits[seen] < 0).sum() > 20 and (logits[seen] > 0).sum() > 20
    for penalty in (1.3, 0.8):
        ref = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor(ids), torch.tensor(logits)).numpy()
        ours = np.asarray(apply_repetition_penalty(jnp.asarray(logits), jnp.asarray(seen), jnp.float32(penalty)))
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)
        assert not np.allclose(ours[seen], logits[seen], rtol=0.05)  # the penalty really moved them
        sp = SamplingParams.create(temperature=1.5, repetition_penalty=penalty)
        warped = np.asarray(warp_logits(apply_repetition_penalty(jnp.asarray(logits), jnp.asarray(seen),
                                                                 sp.repetition_penalty), sp))
        ref_t = TemperatureLogitsWarper(1.5)(torch.tensor(ids), torch.tensor(ref)).double()
        np.testing.assert_allclose(torch.log_softmax(torch.tensor(warped, dtype=torch.float64), -1).numpy(),
                                   torch.log_softmax(ref_t, -1).numpy(), rtol=0, atol=1e-5)


def test_tiny_temperature_samples_the_argmax(rng):
    """temperature -> 0 is greedy: at the smallest normal float32 temperature the division must
    not overflow (it gave NaN probabilities and token 0 at 1e-38); smaller ones are refused."""
    logits = jnp.asarray(rng.normal(size=(4, 300)).astype(np.float32) * 3)
    seen = jnp.zeros((4, 300), bool)
    sp = SamplingParams.create(temperature=1.2e-38)
    for seed in range(3):
        toks = sample_token(logits, seen, jax.random.key(seed), sp)
        np.testing.assert_array_equal(np.asarray(toks), np.argmax(np.asarray(logits), -1))
    for bad in (dict(temperature=1e-39), dict(temperature=1e39), dict(top_p=1e-46),
                dict(repetition_penalty=1e39), dict(repetition_penalty=1e-46)):
        with pytest.raises(ValueError, match="normal float32"):
            SamplingParams.create(**bad)


def test_top_p_one_removes_nothing_and_ties_are_kept_together(rng):
    """top_p=1 keeps the whole vocabulary (a float32 cumsum reached 1.0 early on 49,152 peaked
    logits and cut the tail, in about half of such rows); below 1, tokens tied with the last kept
    one are kept."""
    logits = jnp.asarray(rng.normal(size=(16, 49152)).astype(np.float32) * 8)
    out = warp_logits(logits, SamplingParams.create(temperature=1.0, top_p=1.0))
    assert not np.isinf(np.asarray(out)).any()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(logits - logits.max(-1, keepdims=True)))
    assert np.isinf(np.asarray(warp_logits(logits, SamplingParams.create(temperature=1.0, top_p=0.99)))).any()
    tied = warp_logits(jnp.asarray([[2.0, 1.0, 1.0, 1.0, 0.0]]), SamplingParams.create(temperature=1.0, top_p=0.6))
    assert np.isfinite(np.asarray(tied)[0]).tolist() == [True, True, True, True, False]  # HF keeps only 0 and 3


def _hf_logits(torch_model, prompt, tokens):
    """HF logits ``[len(tokens), V]`` float64 that chose each of ``tokens`` after ``prompt`` (full cache)."""
    with torch.no_grad():
        out = torch_model(torch.tensor([list(prompt) + list(tokens[:-1])])).logits[0, len(prompt) - 1:]
    return out.double().numpy()


def _seen_before(prompt, tokens, vocab):
    """``[len(tokens), V]`` bool: the prompt and the tokens emitted before each step."""
    seen = np.zeros((len(tokens), vocab), bool)
    seen[:, prompt] = True
    for i, t in enumerate(tokens[:-1]):
        seen[i + 1:, t] = True
    return seen


# Sampling end to end, through generate on the tiny qwen3 with policy "full" (its logits are HF's,
# so each step can be checked against the reference): one prompt of 9 tokens, 20 new, chunk 8,
# the shapes of test_parity_hf's greedy test (two compiles: greedy and sampled).
_E2E = dict(max_new_tokens=20, policy="full", chunk=8, attn_impl="xla")


def test_top_k_1_sampling_is_greedy_end_to_end(tiny_models, rng):
    _, m = tiny_models["qwen3"]
    prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
    greedy = G.generate(m.params, m.cfg, [prompt], **_E2E).tokens
    for seed in (0, 1):
        sampled = G.generate(m.params, m.cfg, [prompt], seed=seed, **_E2E,
                             sampling=SamplingParams.create(temperature=1.5, top_k=1))
        assert sampled.tokens == greedy


def test_top_k_samples_stay_among_the_k_best_penalised_logits(tiny_models, rng):
    """Every sampled token is among the 3 highest logits of its step after the repetition
    penalty (HF's logits with the prompt and earlier tokens penalised), and not always the first."""
    torch_model, m = tiny_models["qwen3"]
    prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
    sp = SamplingParams.create(temperature=1.0, top_k=3, repetition_penalty=1.3)
    ranks = []
    for seed in (0, 1):
        toks = G.generate(m.params, m.cfg, [prompt], sampling=sp, seed=seed, **_E2E).tokens[0]
        assert len(toks) == 20
        logits = _hf_logits(torch_model, prompt, toks)
        seen = _seen_before(prompt, toks, m.cfg.vocab_size)
        penalised = np.where(seen, np.where(logits < 0, logits * 1.3, logits / 1.3), logits)
        chosen = penalised[np.arange(20), toks]
        third = np.sort(penalised, axis=-1)[:, -3]
        assert (chosen >= third - 1e-4).all(), (chosen - third)
        ranks += (penalised > chosen[:, None] + 1e-4).sum(-1).tolist()
    assert len(set(ranks)) >= 2  # it really sampled


def test_sampled_logprobs_are_the_raw_model_distribution(tiny_models, rng):
    """With temperature 1.5, top-k and a repetition penalty, each log-probability is HF's raw
    log_softmax at the emitted token (before penalty, temperature and filters)."""
    torch_model, m = tiny_models["qwen3"]
    prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
    sp = SamplingParams.create(temperature=1.5, top_k=20, repetition_penalty=1.3)
    res = G.generate(m.params, m.cfg, [prompt], sampling=sp, seed=int(rng.integers(1 << 30)), **_E2E)
    toks = res.tokens[0]
    assert len(toks) == 20
    logits = _hf_logits(torch_model, prompt, toks)
    ref = torch.log_softmax(torch.tensor(logits), -1).numpy()[np.arange(20), toks]
    np.testing.assert_allclose(res.logprobs[0], ref, rtol=0, atol=1e-4)
    tempered = torch.log_softmax(torch.tensor(logits / 1.5), -1).numpy()[np.arange(20), toks]
    assert np.abs(tempered - ref).max() > 1e-2  # the temperature would show


def test_repetition_penalty_bookkeeping_end_to_end(tiny_models, rng):
    """Greedy with a repetition penalty: every step takes the argmax of HF's logits with the prompt
    (never its left padding) and every earlier output token penalised; a large penalty removes the
    repeats the unpenalised greedy run makes."""
    torch_model, m = tiny_models["qwen3"]
    for _ in range(30):  # a prompt whose unpenalised greedy continuation repeats a prompt token
        prompt = rng.integers(3, m.cfg.vocab_size, 9).tolist()
        plain = G.generate(m.params, m.cfg, [prompt], **_E2E).tokens[0]
        if set(plain) & set(prompt) and len(set(plain)) < len(plain):
            break
    assert set(plain) & set(prompt) and len(set(plain)) < len(plain)
    for penalty in (1.5, 1e4):
        sp = SamplingParams.create(temperature=0.0, repetition_penalty=penalty)
        toks = G.generate(m.params, m.cfg, [prompt], sampling=sp, **_E2E).tokens[0]
        logits = _hf_logits(torch_model, prompt, toks)
        seen = _seen_before(prompt, toks, m.cfg.vocab_size)
        penalised = np.where(seen, np.where(logits < 0, logits * penalty, logits / penalty), logits)
        chosen = penalised[np.arange(20), toks]
        assert (chosen >= penalised.max(-1) - 1e-4).all(), penalty
    assert not set(toks) & set(prompt) and len(set(toks)) == len(toks)  # penalty 1e4: no repeat at all
    # The prompt is left-padded with id 0: padding is not "seen", the real prompt tokens are.
    tokens, valid = G._pad_prompts([prompt], m.cfg)
    state = L.start(m.params, jnp.asarray(tokens), jnp.asarray(valid), 20, 0, cfg=m.cfg, budget=36)
    assert tokens[0, 0] == 0 and np.flatnonzero(np.asarray(state.seen)[0]).tolist() == sorted(set(prompt))


@pytest.mark.parametrize("kwargs, match", [
    # The bound is the padded prompt length (16) + the context (512), as in start.
    (dict(budget=1), "budget must be an integer in \\[2, 528\\] \\(padded prompt length 16 \\+ the model's context 512"),
    (dict(budget=529), "budget must be an integer in \\[2, 528\\]"),
    (dict(budget=None, compression=1.0), "compression must be a number in \\(0, 1\\)"),
    (dict(budget=None, compression=0.0), "compression must be a number in \\(0, 1\\)"),
    (dict(budget=None, compression=float("nan")), "compression must be a number in \\(0, 1\\)"),
    (dict(budget="64"), "budget must be an integer in \\[2, 528\\].*'64'"),
    (dict(policy="full", budget=None, max_new_tokens=600), "must fit in the model's context \\(512\\)"),
    (dict(max_new_tokens=4.0), "max_new_tokens must be an integer in \\[1, 2\\*\\*31 - 1\\]"),
    (dict(max_new_tokens=2**31), "max_new_tokens must be an integer in \\[1, 2\\*\\*31 - 1\\], got 2147483648"),
    (dict(max_new_tokens=3_000_000_000, min_new_tokens=3_000_000_000), "max_new_tokens must be an integer in"),
    (dict(seed=2**40), "seed must be an integer in \\[0, 2\\*\\*31 - 1\\]"),
    (dict(attn_impl="triton"), "needs a CUDA GPU"),
    (dict(attn_impl="mosaic"), "needs a TPU"),
    (dict(forced=[[10**6]]), "forced\\[0\\] holds token ids outside"),
    (dict(prompts=[[3, 2**70]]), "prompts\\[0\\] holds token ids outside \\[0, \\d+\\): \\[1180591620717411303424\\]"),
    (dict(budget=jnp.int32(16)), "budget must be an integer .*\\(a Python int: it sets array shapes"),
    (dict(policy="h2o"), "policy must be one of"),
    (dict(policy="full"), "policy 'full' sizes the buffer"),
    (dict(max_new_tokens=0), "max_new_tokens must be an integer in \\[1, 2\\*\\*31 - 1\\]"),
    (dict(prompts=[]), "empty batch"),
    (dict(prompts=[[5, 6], []]), "prompt 1 is empty"),
    (dict(prompts=[list(range(3, 100)) * 6]), "longer than the model's context \\(512\\)"),
    (dict(prompts=[[5, 100000]]), "token ids outside"),
    # Wrong types get TypeErrors that say what to pass instead.
    (dict(prompts=["w5 w6"]), "prompts\\[0\\] is text"),
    (dict(prompts=["123"]), "prompts\\[0\\] is text"),
    (dict(prompts=[5, 6, 7]), "for one prompt pass \\[ids\\], not ids"),
    (dict(prompts="w5 w6"), "prompts must be a list of token-id lists"),
    (dict(prompts=[[5, 2.5]]), "integer token ids"),
    (dict(sampling={"temperature": 1.0}), "sampling must be a SamplingParams"),
    # SamplingParams built directly (not through create) is checked too.
    (dict(sampling=SamplingParams(temperature=-1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, do_sample=True)),
     "sampling.temperature must be a finite number >= 0"),
    (dict(sampling=SamplingParams(temperature=jnp.float32(1.0), top_k=jnp.int32(0), top_p=jnp.float32(2.0),
                                  repetition_penalty=jnp.float32(1.0))), "sampling.top_p must be in \\(0, 1\\]"),
    (dict(stop_ids=None), "stop_ids must be a sequence of integer"),
    (dict(stop_ids=[-1]), "stop_ids must be token ids in \\[0, "),
    (dict(chunk=10**9), "chunk must be an integer in \\[1, 65536\\], got 1000000000"),
    (dict(chunk=0), "chunk must be an integer in \\[1, 65536\\]"),
    (dict(on_chunk=5), "on_chunk must be None or a callable"),
])
def test_bad_generate_arguments_fail_early(tiny_models, kwargs, match):
    _, m = tiny_models["llama"]
    args = dict(prompts=[[5, 6, 7]], max_new_tokens=4, budget=8, attn_impl="xla")
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        G.generate(m.params, m.cfg, args.pop("prompts"), **args)


def test_bad_low_level_arguments_fail_early(tiny_models):
    """start / decode_chunk / decode_step check shapes, dtypes, budget and (when concrete) values."""
    from longflow_jax.model import decode_step

    _, m = tiny_models["llama"]
    tokens = jnp.asarray([[0, 0, 5, 6]], jnp.int32)
    valid = jnp.asarray([[False, False, True, True]])
    good = dict(max_new_tokens=4, seed=0, cfg=m.cfg, budget=8)
    bad_start = [
        (dict(budget=10**6), "budget must be an integer in \\[2, 516\\]"),
        (dict(budget=1), "budget must be an integer in \\[2, 516\\]"),
        (dict(max_new_tokens=2, min_new_tokens=3), "min_new_tokens \\(3\\) must be <= max_new_tokens"),
        (dict(seed=2**31), "seed must be an integer in"),
        (dict(budget=8.0), "budget must be an integer"),
        (dict(max_new_tokens=0), "max_new_tokens must be an integer in \\[1, "),
        (dict(max_new_tokens=2**31), "max_new_tokens must be an integer in \\[1, 2\\*\\*31 - 1\\]"),
        (dict(key_valid=jnp.asarray([[True, True, False, False]])), "left-padded"),
        (dict(key_valid=valid.astype(jnp.int32)), "key_valid must be a bool array"),
        (dict(tokens=tokens.at[0, 3].set(10**6)), "tokens must be ids in \\[0, "),
        (dict(tokens=tokens[0]), "tokens must be a non-empty \\[batch, T\\] array"),
    ]
    for change, match in bad_start:
        args = dict(tokens=tokens, key_valid=valid, **good)
        args.update(change)
        with pytest.raises(ValueError, match=match):
            L.start(m.params, args.pop("tokens"), args.pop("key_valid"), args.pop("max_new_tokens"),
                    args.pop("seed"), **args)
    state = L.start(m.params, tokens, valid, **good)
    sp = SamplingParams.create(temperature=0.0)
    for forced in (jnp.full((2, 3), -1, jnp.int32), jnp.full((1, 3), -1.0), jnp.full((3,), -1, jnp.int32)):
        with pytest.raises(ValueError, match="forced must be an integer array \\[batch=1, steps\\]"):
            L.decode_chunk(m.params, state, forced, sp, cfg=m.cfg, attn_impl="xla")
    forced = jnp.full((1, 3), -1, jnp.int32)
    with pytest.raises(ValueError, match="stop_ids must be token ids in \\[0, "):
        L.decode_chunk(m.params, state, forced, sp, cfg=m.cfg, stop_ids=[10**6], attn_impl="xla")
    with pytest.raises(TypeError, match="stop_ids must be a sequence of integer"):
        L.decode_chunk(m.params, state, forced, sp, cfg=m.cfg, stop_ids="2", attn_impl="xla")
    one = jnp.asarray([7], jnp.int32)
    for token, position in ((one[None], one), (one, 40), (jnp.asarray([7, 8], jnp.int32), one),
                            (one, one.astype(jnp.float32))):
        with pytest.raises(ValueError, match="must be an integer array of shape \\[batch\\] = \\(1,\\)"):
            decode_step(m.params, state.buffer, token, position, cfg=m.cfg, attn_impl="xla")
    vocab = m.cfg.vocab_size
    one = np.asarray([7], np.int32)  # NumPy ids are range checked (jax arrays are not read back)
    for token, position, match in ((one * 0 + vocab, one, f"token must hold values in \\[0, {vocab}\\), "
                                    f"got values in \\[{vocab}, {vocab}\\]"),
                                   (one * 0 - 1, one, "token must hold values in \\[0, "),
                                   (one, one * 0 - 3, "position must hold values in \\[0, 2147483648\\)")):
        with pytest.raises(ValueError, match=match):
            decode_step(m.params, state.buffer, token, position, cfg=m.cfg, attn_impl="xla")


def test_wrong_types_at_entry_points_raise_type_errors(tiny_models):
    """None / swapped arguments get a TypeError naming the argument, not an AttributeError from deep inside."""
    from longflow_jax.model import decode_step

    _, m = tiny_models["llama"]
    tokens = jnp.asarray([[0, 0, 5, 6]], jnp.int32)  # the shapes of the test above: no new compile
    valid = jnp.asarray([[False, False, True, True]])
    state = L.start(m.params, tokens, valid, 4, 0, cfg=m.cfg, budget=8)
    forced = jnp.full((1, 3), -1, jnp.int32)
    sp = SamplingParams.create(temperature=0.0)
    calls = [
        (lambda: L.decode_chunk(m.params, state, forced, None, cfg=m.cfg), "sampling must be a SamplingParams"),
        (lambda: L.decode_chunk(m.params, state, forced, sp, cfg=None), "cfg must be a ModelConfig .*got NoneType"),
        (lambda: L.decode_chunk(m.params, state.buffer, forced, sp, cfg=m.cfg), "state must be a DecodeState"),
        (lambda: L.decode_chunk.lower(m.params, state, forced, None, cfg=m.cfg), "sampling must be a SamplingParams"),
        (lambda: decode_step(m.params, state.buffer, tokens[:, 0], tokens[:, 0], cfg=None),
         "cfg must be a ModelConfig .*got NoneType"),
        (lambda: decode_step(m.params, state, tokens[:, 0], tokens[:, 0], cfg=m.cfg), "buffer must be a KVBuffer"),
        (lambda: G.generate(m.cfg, m.params, [[5, 6]], max_new_tokens=4, budget=8),
         "cfg must be a ModelConfig .*got dict \\(the order is params, cfg: swapped\\?\\)"),
        (lambda: G.generate(None, m.cfg, [[5, 6]], max_new_tokens=4, budget=8), "params must be the parameter dict"),
        (lambda: G.score_continuation(m.cfg, m.params, [[5, 6]], [[7]], budget=8), "cfg must be a ModelConfig"),
        (lambda: L.start(m.params, tokens, valid, 4, 0, cfg=None, budget=8), "cfg must be a ModelConfig"),
        (lambda: G.resolve_budget(None, "longflow", 5, 4, budget=8), "cfg must be a ModelConfig"),
    ]
    for call, match in calls:
        with pytest.raises(TypeError, match=match):
            call()
    # Bad values in a SamplingParams built directly are caught before tracing too.
    bad = SamplingParams(temperature=jnp.float32(1.0), top_k=jnp.int32(0), top_p=jnp.float32(2.0),
                         repetition_penalty=jnp.float32(1.0), do_sample=True)
    with pytest.raises(ValueError, match="sampling.top_p must be in \\(0, 1\\], got 2.0"):
        L.decode_chunk(m.params, state, forced, bad, cfg=m.cfg)
    # Parameters that do not fit cfg are named by path before any tracing.
    no_layers = {k: v for k, v in m.params.items() if k != "layers"}
    narrow = {**m.params, "layers": {**m.params["layers"], "wq": m.params["layers"]["wq"][..., :-1]}}
    for params, match in ((no_layers, "params has no layers \\(this cfg's parameters"),
                          (narrow, "params layers/wq has shape \\(\\d+, \\d+, \\d+\\), expected")):
        with pytest.raises(ValueError, match=match):
            G.generate(params, m.cfg, [[5, 6]], max_new_tokens=4, budget=8)
        with pytest.raises(ValueError, match=match):
            L.decode_chunk(params, state, forced, sp, cfg=m.cfg)


def test_direct_sampling_params_are_checked_only_when_concrete():
    """SamplingParams(...) skips create's checks; check() applies them to concrete values and skips traced ones."""
    def make(**kw):
        return SamplingParams(**{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0,
                                 "do_sample": True, **kw})

    for kw, match in [({"temperature": -1.0}, "sampling.temperature must be a finite number >= 0"),
                      ({"temperature": 0.0}, "temperature must be > 0 when do_sample=True"),
                      ({"top_p": 2.0}, "sampling.top_p must be in \\(0, 1\\], got 2.0"),
                      ({"top_k": np.int32(-1)}, "sampling.top_k must be an integer in \\[0, 2\\*\\*31 - 1\\]"),
                      ({"top_k": 5.0}, "sampling.top_k must be an integer"),
                      ({"repetition_penalty": jnp.float32(float("nan"))}, "sampling.repetition_penalty must be")]:
        with pytest.raises(ValueError, match=match):
            make(**kw).check()
    with pytest.raises(TypeError, match="sampling.temperature must be .*got NoneType"):
        make(temperature=None).check()
    with pytest.raises(TypeError, match="sampling.do_sample must be a bool"):
        make(do_sample=1).check()
    good = make(temperature=0.0, do_sample=False)  # greedy: temperature unused
    assert good.check() is good
    # Under jit the fields are tracers: nothing to check, nothing raised; abstract values pass too.
    assert float(jax.jit(lambda sp: sp.check().top_p * 2)(SamplingParams.create(top_p=0.5))) == 1.0
    jax.tree.map(lambda x: jax.ShapeDtypeStruct((), jnp.float32), good).check()


@pytest.mark.parametrize("length", [0, -1, 3.5, True, "8", None])
def test_prompt_bucket_rejects_non_positive_integers(length):
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        L.prompt_bucket(length)


def test_prompt_bucket_values():
    assert [L.prompt_bucket(n) for n in (1, 16, 17, 40, np.int64(64), 65)] == [16, 16, 32, 64, 64, 128]


def test_start_and_generate_share_the_largest_budget(tiny_models):
    """For one prompt both entry points accept budgets up to its padded length + the model's context."""
    _, m = tiny_models["llama"]
    prompt = list(range(3, 43))  # 40 tokens, padded to 64: the bound is 64 + 512
    tokens, valid = G._pad_prompts([prompt], m.cfg)
    assert G.resolve_budget(m.cfg, "longflow", 40, 4, budget=576) == 576
    match = "budget must be an integer in \\[2, 576\\] \\(padded prompt length 64 \\+ the model's context 512\\)"
    with pytest.raises(ValueError, match=match):
        G.resolve_budget(m.cfg, "longflow", 40, 4, budget=577)
    with pytest.raises(ValueError, match=match):
        G.generate(m.params, m.cfg, [prompt], max_new_tokens=4, budget=577, attn_impl="xla")
    with pytest.raises(ValueError, match=match):
        L.start(m.params, jnp.asarray(tokens), jnp.asarray(valid), 4, 0, cfg=m.cfg, budget=577)
    # policy "full" produces budgets inside the same bound (here past the context itself).
    assert G.resolve_budget(m.cfg, "full", 40, 472, None) == 64 + 472 <= 576
    # A prompt longer than the context (512) is refused by start as by generate, before any compile.
    long_valid = jnp.ones((1, 520), bool)
    with pytest.raises(ValueError, match="a prompt has 520 tokens .* longer than the model's context \\(512\\)"):
        L.start(m.params, jnp.full((1, 520), 5, jnp.int32), long_valid, 4, 0, cfg=m.cfg, budget=16)
    L.start(m.params, jnp.full((1, 520), 5, jnp.int32), long_valid.at[0, :8].set(False), 4, 0,
            cfg=m.cfg, budget=16)  # 512 real tokens after 8 of padding: accepted


def test_decode_chunk_takes_stop_ids_as_a_list(tiny_models):
    """A list works like the tuple (it becomes the static argument), and it does stop the row."""
    _, m = tiny_models["llama"]
    tokens = jnp.asarray([[5, 6, 7, 8]], jnp.int32)
    sp = SamplingParams.create(temperature=0.0)
    forced = jnp.asarray([[9, 4, 9, 9]], jnp.int32)  # teacher-forced: 4 is emitted second
    state = L.start(m.params, tokens, jnp.ones_like(tokens, bool), 4, 0, cfg=m.cfg, budget=8)
    _, tok, _ = L.decode_chunk(m.params, state, forced, sp, cfg=m.cfg, stop_ids=[4], attn_impl="xla")
    assert np.asarray(tok).tolist() == [[9, 4, -1, -1]]
    fresh = L.start(m.params, tokens, jnp.ones_like(tokens, bool), 4, 0, cfg=m.cfg, budget=8)
    bad = np.asarray(forced).copy()
    bad[0, 2] = m.cfg.vocab_size
    with pytest.raises(ValueError, match=f"forced ids must be < vocab_size \\({m.cfg.vocab_size}\\)"):
        L.decode_chunk(m.params, fresh, bad, sp, cfg=m.cfg, attn_impl="xla")
    # Inside an outer jit (state traced) the same chunk gives the same tokens.
    in_jit = jax.jit(lambda st: L.decode_chunk(m.params, st, forced, sp, cfg=m.cfg, stop_ids=[4],
                                               attn_impl="xla")[1])
    assert np.asarray(in_jit(fresh)).tolist() == [[9, 4, -1, -1]]
    # The first state was donated: reusing it is refused with our message, not XLA's.
    with pytest.raises(ValueError, match="state was donated to an earlier decode_chunk call"):
        L.decode_chunk(m.params, state, forced, sp, cfg=m.cfg, stop_ids=[4], attn_impl="xla")


def test_longflow_past_the_context_warns(tiny_models):
    """The buffer stays fixed, but positions past max_position_embeddings get a warning."""
    _, m = tiny_models["llama"]
    context = m.cfg.max_position_embeddings
    with pytest.warns(UserWarning, match="exceeds the model's context"):
        res = G.generate(m.params, m.cfg, [[5, 6, 7]], max_new_tokens=context, budget=8,
                         attn_impl="xla")
    assert len(res.tokens[0]) == context


def test_full_policy_budget_may_exceed_the_context(tiny_models, rng):
    """policy "full" sizes the buffer to the padded prompt + max_new_tokens, which can pass the context."""
    _, m = tiny_models["llama"]
    prompt = rng.integers(3, m.cfg.vocab_size, 300).tolist()  # padded to 512 = the context
    res = G.generate(m.params, m.cfg, [prompt], max_new_tokens=4, policy="full", attn_impl="xla")
    assert res.budget == 516 > m.cfg.max_position_embeddings and len(res.tokens[0]) == 4


def test_numpy_prompts_and_scalar_stop_id_are_accepted(tiny_models, rng):
    _, m = tiny_models["llama"]
    prompt = rng.integers(3, m.cfg.vocab_size, 6)
    a = G.generate(m.params, m.cfg, [prompt], max_new_tokens=5, budget=8, stop_ids=2, attn_impl="xla")
    b = G.generate(m.params, m.cfg, [prompt.tolist()], max_new_tokens=5, budget=8, stop_ids=(2,), attn_impl="xla")
    assert a.tokens == b.tokens


def test_compression_uses_real_prompt_length(tiny_models):
    _, m = tiny_models["llama"]
    # 39-token prompt (bucket 64) + 4 new tokens, 80% evicted: 0.2 * 43 = 8.6 -> 9 slots.
    assert G.resolve_budget(m.cfg, "longflow", 39, 4, compression=0.8) == 9
    res = G.generate(m.params, m.cfg, [list(range(3, 42))], max_new_tokens=4, compression=0.8, attn_impl="xla")
    assert res.budget == 9


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-0.1), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(repetition_penalty=float("nan")), "repetition_penalty must be a finite number > 0"),
    (dict(top_p=0.0), "top_p must be in \\(0, 1\\]"),
    (dict(top_p=1.5), "top_p must be in \\(0, 1\\]"),
    (dict(top_k=-1), "top_k must be an integer in"),
    (dict(top_k=10**12), "top_k must be an integer in"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be a finite number > 0"),
])
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams.create(**kwargs)


def test_sampling_create_takes_numpy_and_jax_scalars_and_rejects_arrays():
    """A concrete 0-d temperature samples like the Python number would; a vector is refused by
    name (it used to slip through as greedy); bf16 fields are numbers too."""
    for temperature in (0.7, np.float32(0.7), np.array(0.7), jnp.float32(0.7)):
        assert SamplingParams.create(temperature=temperature).do_sample is True
    assert SamplingParams.create(temperature=jnp.float32(0.0)).do_sample is False
    with pytest.raises(ValueError, match=r"temperature must be a single number, got shape \(2,\)"):
        SamplingParams.create(temperature=np.array([0.7, 0.8]))
    with pytest.raises(ValueError, match="top_p must be a single number"):
        SamplingParams.create(top_p=jnp.ones((3,)))
    bf16 = SamplingParams(temperature=jnp.bfloat16(0.7), top_k=jnp.int32(5), top_p=jnp.bfloat16(0.9),
                          repetition_penalty=jnp.bfloat16(1.1), do_sample=True)
    assert bf16.check() is bf16
    with pytest.raises(ValueError, match="top_p must be in"):
        bf16.replace(top_p=jnp.bfloat16(2.0)).check()


def test_score_continuation_past_the_context_names_the_continuation(tiny_models):
    """policy "full" must hold prompt + continuation; the error speaks of what the caller passed."""
    _, m = tiny_models["llama"]
    with pytest.raises(ValueError, match="longest prompt \\+ the longest continuation \\(3 \\+ 511 tokens\\) "
                                         "exceed the model's context \\(512\\)"):
        G.score_continuation(m.params, m.cfg, [[5, 6, 7], [5]], [[7], [7] * 511], policy="full")


def test_token_rows_may_be_jax_or_numpy_arrays(tiny_models):
    _, m = tiny_models["llama"]
    rows = G._check_token_rows([jnp.array([5, 6], jnp.int32), np.array([7]), [8, 9]], "prompts", m.cfg)
    assert rows == [[5, 6], [7], [8, 9]]
    with pytest.raises(TypeError, match="prompts\\[0\\] must be a flat list of integer token ids"):
        G._check_token_rows([jnp.array([[5, 6]])], "prompts", m.cfg)


def test_long_chunks_are_cut_to_a_shared_bucket(tiny_models, monkeypatch):
    """chunk past max_new_tokens only adds padding steps: it is cut to max(32, next power of
    two >= max_new_tokens), so 20 and 30 new tokens share one compiled chunk length; the tokens
    equal those of the default chunk."""
    _, m = tiny_models["llama"]
    lengths = []
    decode = L._decode_chunk

    def recording(params, state, forced, *args, **kwargs):
        lengths.append(forced.shape[1])
        return decode(params, state, forced, *args, **kwargs)

    monkeypatch.setattr(G, "_decode_chunk", recording)
    prompts = [[int(t) for t in np.random.default_rng().integers(3, 150, 7)]]
    long = [G.generate(m.params, m.cfg, prompts, max_new_tokens=n, budget=8, chunk=60000,
                       attn_impl="xla").tokens for n in (20, 30)]
    assert lengths == [32, 32]
    monkeypatch.undo()
    assert long[1] == G.generate(m.params, m.cfg, prompts, max_new_tokens=30, budget=8,
                                 attn_impl="xla").tokens
    assert long[0][0] == long[1][0][:20]


def test_empty_buffer_and_decode_step_name_bad_arguments(tiny_models):
    """empty_buffer checks batch / budget / dtype; decode_step checks that the buffer fits cfg and
    the parameters' dtype (instead of a broadcast TypeError, or the kernel's "k and v must have
    q's dtype" from deep inside the trace)."""
    from longflow_jax.model import decode_step, empty_buffer

    _, m = tiny_models["llama"]
    cfg = m.cfg
    buf = empty_buffer(cfg, 2, 8, "float32")
    assert buf.k.shape == buf.v.shape == (cfg.num_layers, 2, cfg.num_kv_heads, 8, cfg.head_dim)
    assert buf.k.dtype == jnp.float32 and buf.valid.dtype == jnp.bool_ and not np.asarray(buf.valid).any()
    assert buf.position.shape == (cfg.num_layers, 2, 8) and (np.asarray(buf.position) == -1).all()
    per_head = empty_buffer(cfg, 2, 8, jnp.bfloat16, per_kv_head=True)
    assert per_head.k.dtype == jnp.bfloat16 and per_head.per_kv_head
    assert per_head.next_slot.shape == (cfg.num_layers, 2, cfg.num_kv_heads)
    for args, error, match in [
        ((cfg, 1, -3, jnp.float32), ValueError, "budget must be an integer >= 2 \\(slots per layer\\), got -3"),
        ((cfg, 1, 8.0, jnp.float32), ValueError, "budget must be an integer >= 2 .*got 8.0"),
        ((cfg, 0, 8, jnp.float32), ValueError, "batch must be an integer >= 1, got 0"),
        ((cfg, 1, 8, jnp.int32), ValueError, "dtype must be float32, bfloat16 or float16 .*got int32"),
        ((cfg, 1, 8, "float3"), TypeError, "dtype must be a float dtype .*got 'float3'"),
        ((None, 1, 8, jnp.float32), TypeError, "cfg must be a ModelConfig"),
    ]:
        with pytest.raises(error, match=match):
            empty_buffer(*args)
    one = jnp.asarray([7], jnp.int32)
    with pytest.raises(ValueError, match="buffer K/V dtype \\(bfloat16, bfloat16\\) must be the parameters' "
                                         "dtype \\(float32\\).*empty_buffer\\(cfg, batch, budget, float32\\)"):
        decode_step(m.params, empty_buffer(cfg, 1, 8, jnp.bfloat16), one, one, cfg=cfg, attn_impl="xla")
    other = tiny_models["qwen3"][1].cfg  # head_dim 24, not 16
    with pytest.raises(ValueError, match="buffer does not fit cfg: k and v must be \\[layers=2, batch, kv_heads=2, "
                                         "budget, head_dim=16\\].*got k \\(2, 1, 2, 8, 24\\)"):
        decode_step(m.params, empty_buffer(other, 1, 8, jnp.float32), one, one, cfg=cfg, attn_impl="xla")
