"""The host driver: :func:`generate` and :func:`score_continuation` over the jitted decode loop.

Takes token-id lists, checks them, left-pads them to a :func:`prompt_bucket`,
sizes the KV buffer (:func:`resolve_budget`), runs :func:`start` (prefill,
SnapKV) and then the jitted chunks of ``decode_loop.decode_chunk`` until every row has
stopped, and collects tokens, log-probabilities, timings and buffer sizes.
Everything per token runs inside ``jax.jit`` (``longflow_jax.decode_loop``);
this module only loops over chunks on the host.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from longflow_jax.config import ModelConfig
from longflow_jax.decode_loop import (DEFAULT_CHUNK, MAX_CHUNK, _check_budget, _check_stop_ids, _decode_chunk,
                                      prompt_bucket, start)
from longflow_jax.model import check_params_cfg
from longflow_jax.policies import POLICIES
from longflow_jax.sampling import SamplingParams, check_sampling
from pallas_kernels._validation import is_int as _is_int


@dataclasses.dataclass
class GenerationResult:
    """Output of :func:`generate` / :func:`score_continuation`.

    Attributes:
      tokens: per row, the emitted token ids (stop token included, if hit).
      logprobs: per row, float32 log-probabilities of those tokens.
      prompt_tokens: per row, the number of prompt tokens.
      prefill_seconds, decode_seconds: wall time (device work completed).
      budget: slots per layer the buffer had.
      buffer_bytes: bytes of the KV buffer (K+V+bookkeeping).
      full_cache_bytes: bytes a full K/V cache would need for the whole batch, every
        row at the longest row's length (prompt + emitted tokens).
    """

    tokens: list[list[int]]
    logprobs: list[np.ndarray]
    prompt_tokens: list[int]
    prefill_seconds: float
    decode_seconds: float
    budget: int
    buffer_bytes: int
    full_cache_bytes: int

    @property
    def generated_tokens(self) -> int:
        """Total tokens emitted over all rows."""
        return sum(len(t) for t in self.tokens)

    @property
    def evicted(self) -> bool:
        """Whether some row held more tokens (prompt + fed outputs) than the buffer has slots."""
        return any(p + len(t) > self.budget for p, t in zip(self.prompt_tokens, self.tokens))


def resolve_budget(cfg: ModelConfig, policy: str, prompt_len: int, max_new_tokens: int,
                   budget: int | None = None, compression: float | None = None) -> int:
    """Slots per layer for ``policy``, validated.

    ``longflow`` / ``longflow-per-head`` take ``budget``, or derive it from ``compression`` (fraction
    of the final sequence ``prompt + max_new_tokens`` evicted, paper's
    convention: 0.8 keeps 20%).  ``full`` sizes the buffer to the padded prompt
    plus ``max_new_tokens`` so nothing is ever evicted.

    Every budget lies in ``[2, prompt_bucket(prompt_len) + context]``, the
    bound :func:`start` checks too (the largest buffer a policy needs: see
    policy ``full``).

    Raises:
      TypeError: ``cfg`` not a ModelConfig.
      ValueError: unknown policy, prompt_len < 1, max_new_tokens outside
        [1, 2**31 - 1], budget outside ``[2, prompt_bucket(prompt_len) +
        context]``, compression outside (0, 1), both or neither of
        budget/compression (longflow), either of them with policy ``full``,
        or policy ``full`` with ``prompt_len + max_new_tokens`` past the
        model's context.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig (e.g. load_model(...).cfg), got {type(cfg).__name__}")
    if not _is_int(prompt_len) or prompt_len < 1:
        raise ValueError(f"prompt_len must be an integer >= 1, got {prompt_len!r}")
    padded = prompt_bucket(prompt_len)
    _check_max_new_tokens(max_new_tokens)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if budget is not None and compression is not None:
        raise ValueError("give either budget or compression, not both")
    context = cfg.max_position_embeddings
    if policy == "full":
        if budget is not None or compression is not None:
            raise ValueError("budget/compression apply to the longflow policies; policy 'full' sizes the buffer "
                             "to the padded prompt plus max_new_tokens itself")
        if prompt_len + max_new_tokens > context:
            raise ValueError(f"policy 'full' keeps every token: prompt ({prompt_len}) + max_new_tokens "
                             f"({max_new_tokens}) must fit in the model's context ({context}); use a longflow policy "
                             "to generate further with a fixed buffer")
        return padded + max_new_tokens
    if compression is not None:
        if not _is_real(compression) or not 0 < compression < 1:
            raise ValueError(f"compression must be a number in (0, 1) (fraction of tokens evicted), got {compression!r}")
        budget = max(2, int(round((1 - compression) * (prompt_len + max_new_tokens))))
    if budget is None:
        raise ValueError(f"policy {policy!r} needs budget or compression")
    return _check_budget(budget, cfg, padded)


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) \
        and np.isfinite(x)


def _check_token_rows(rows, name: str, cfg: ModelConfig) -> list[list[int]]:
    """Validate a batch of token-id lists; return them as plain int lists.

    Raises:
      TypeError: not a sequence of sequences of integers (e.g. text, or a flat list of ids).
      ValueError: ids outside the vocabulary.
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (Sequence, np.ndarray, jax.Array)):
        raise TypeError(f"{name} must be a list of token-id lists (one per batch row), got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)):
            raise TypeError(f"{name}[{i}] is text; {name} must hold token ids: encode with the tokenizer first "
                            "(e.g. model.tokenizer(text)['input_ids'])")
        if not isinstance(row, (Sequence, np.ndarray, jax.Array)):
            raise TypeError(f"{name}[{i}] must be a list of token ids, got {type(row).__name__} "
                            f"(for one prompt pass [ids], not ids)")
        arr = np.asarray(row)
        huge = arr.dtype == object and arr.ndim == 1 and all(  # Python ints past int64
            isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in arr)
        if not huge and (arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer))):
            raise TypeError(f"{name}[{i}] must be a flat list of integer token ids, got dtype {arr.dtype}, "
                            f"shape {arr.shape}")
        bad = arr[(arr < 0) | (arr >= cfg.vocab_size)]
        if bad.size:
            raise ValueError(f"{name}[{i}] holds token ids outside [0, {cfg.vocab_size}): {bad[:5].tolist()}")
        out.append(arr.astype(np.int64).tolist())
    return out


def _pad_prompts(prompts: list[list[int]], cfg: ModelConfig):
    if len(prompts) == 0:
        raise ValueError("prompts must hold at least one prompt (got an empty batch)")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {i} is empty: every batch row needs at least one token")
        if len(p) > cfg.max_position_embeddings:
            raise ValueError(f"prompt {i} has {len(p)} tokens, longer than the model's context "
                             f"({cfg.max_position_embeddings})")
    t = prompt_bucket(max(len(p) for p in prompts))
    tokens = np.zeros((len(prompts), t), np.int32)
    valid = np.zeros((len(prompts), t), bool)
    for i, p in enumerate(prompts):
        tokens[i, t - len(p):] = p
        valid[i, t - len(p):] = True
    return tokens, valid


def _check_max_new_tokens(max_new_tokens) -> None:
    if not _is_int(max_new_tokens) or not 1 <= max_new_tokens < 2**31:
        raise ValueError(f"max_new_tokens must be an integer in [1, 2**31 - 1], got {max_new_tokens!r}")


def _check_decode_args(max_new_tokens, min_new_tokens, chunk, sampling, stop_ids, seed, attn_impl,
                       vocab_size=None):
    _check_max_new_tokens(max_new_tokens)
    if not _is_int(min_new_tokens) or not 0 <= min_new_tokens <= max_new_tokens:
        raise ValueError(f"min_new_tokens must be an integer in [0, max_new_tokens={max_new_tokens}], "
                         f"got {min_new_tokens!r}")
    if not _is_int(chunk) or not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be an integer in [1, {MAX_CHUNK}], got {chunk!r}")
    if sampling is not None:
        check_sampling(sampling)
    stop_ids = _check_stop_ids(stop_ids, vocab_size)
    if not _is_int(seed) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be an integer in [0, 2**31 - 1], got {seed!r}")
    check_attn_impl(attn_impl)
    return stop_ids


def check_attn_impl(attn_impl: str) -> None:
    """Reject an attention implementation the current backend cannot run (before any compile).

    Raises:
      ValueError: unknown name, ``"triton"`` without a GPU, ``"mosaic"`` without a TPU.
    """
    allowed = ("auto", "xla", "triton", "mosaic")
    if attn_impl not in allowed:
        raise ValueError(f"attn_impl must be one of {allowed}, got {attn_impl!r}")
    backend = jax.default_backend()
    if attn_impl == "triton" and backend != "gpu":
        raise ValueError(f"attn_impl='triton' needs a CUDA GPU; this backend is {backend!r} (use 'auto' or 'xla')")
    if attn_impl == "mosaic" and backend != "tpu":
        raise ValueError(f"attn_impl='mosaic' needs a TPU; this backend is {backend!r} (use 'auto' or 'xla')")


def generate(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
             policy: str = "longflow", budget: int | None = None, compression: float | None = None,
             sampling: SamplingParams | None = None, stop_ids: Sequence[int] = (), seed: int = 0,
             min_new_tokens: int = 0,
             chunk: int = DEFAULT_CHUNK, attn_impl: str = "auto",
             forced: Sequence[Sequence[int]] | None = None,
             on_chunk: Callable[[np.ndarray], None] | None = None) -> GenerationResult:
    """Generate (or teacher-force) continuations of a batch of token-id prompts.

    Args:
      params: parameter pytree (``Decoder.params()``).
      cfg: model configuration.
      prompts: ``batch`` lists of token ids (no padding).
      max_new_tokens: tokens to emit per row, >= 1.
      policy: ``"longflow"`` (fixed budget, one eviction per layer),
        ``"longflow-per-head"`` (one eviction per KV head) or ``"full"``.
      budget, compression: see :func:`resolve_budget`.
      sampling: :class:`SamplingParams` (default greedy).
      stop_ids: token ids that end a row (emitted, then the row stops).
      seed: PRNG seed.
      min_new_tokens: stop tokens are suppressed until this many tokens were emitted.
      chunk: decode steps per jitted call (streaming granularity), in [1, 65536];
        one longer than ``max(32, next power of two >= max_new_tokens)`` is cut
        to that (the extra steps would only emit padding).
      attn_impl: decode attention implementation, see ``pallas_kernels``.
      forced: optional per-row continuations to feed instead of sampling.
      on_chunk: called with each chunk's ``[batch, chunk]`` tokens (-1 = none).

    Returns:
      :class:`GenerationResult`.

    Raises:
      TypeError: params not a parameter dict or cfg not a ModelConfig (e.g.
        swapped); prompts (or forced) not lists of integer token ids, e.g. text
        or a flat list; sampling not a SamplingParams; stop_ids not integers;
        on_chunk neither None nor callable.
      ValueError: empty batch or prompt, prompt longer than the context, token
        ids outside the vocabulary, bad budget/compression/policy (budget at
        most the padded prompt length plus the context, as for :func:`start`),
        max_new_tokens outside [1, 2**31 - 1], min_new_tokens outside [0,
        max_new_tokens], chunk outside [1, 65536], seed outside [0, 2**31), sampling values
        outside their ranges, attn_impl the backend cannot run; ``forced`` not
        one continuation per prompt or one longer than max_new_tokens; params
        not shaped for cfg (named by path).
    """
    check_params_cfg(params, cfg)
    stop_ids = _check_decode_args(max_new_tokens, min_new_tokens, chunk, sampling, stop_ids, seed, attn_impl,
                                  cfg.vocab_size)
    if on_chunk is not None and not callable(on_chunk):
        raise TypeError(f"on_chunk must be None or a callable taking the [batch, chunk] tokens, "
                        f"got {type(on_chunk).__name__}")
    # Steps past max_new_tokens only emit padding (-1). Cut to a power-of-two bucket (at
    # least the default) so that different max_new_tokens share compiled chunk shapes.
    chunk = min(chunk, max(DEFAULT_CHUNK, 1 << (max_new_tokens - 1).bit_length()))
    prompts = _check_token_rows(prompts, "prompts", cfg)
    tokens, valid = _pad_prompts(prompts, cfg)
    budget = resolve_budget(cfg, policy, max(len(p) for p in prompts), max_new_tokens, budget, compression)
    longest_total = max(len(p) for p in prompts) + max_new_tokens
    if longest_total > cfg.max_position_embeddings:  # only longflow gets here ("full" raised above)
        warnings.warn(f"prompt + max_new_tokens ({longest_total}) exceeds the model's context "
                      f"({cfg.max_position_embeddings}): the KV buffer stays at {budget} slots, but "
                      f"positions past the context rely on RoPE extrapolation", UserWarning,
                      stacklevel=2)
    sampling = sampling or SamplingParams.create(temperature=0.0)
    b = len(prompts)
    forced_rows = [] if forced is None else _check_token_rows(forced, "forced", cfg)
    if forced is not None and len(forced_rows) != b:
        raise ValueError(f"forced must have one continuation per prompt ({b}), got {len(forced_rows)}")
    # Sized by the forced tokens, not max_new_tokens (up to 2**31 - 1): chunks are cut from it as needed.
    forced_all = np.full((b, max(map(len, forced_rows), default=0)), -1, np.int32)
    for i, f in enumerate(forced_rows):
        if len(f) > max_new_tokens:
            raise ValueError(f"forced continuation {i} has {len(f)} tokens > max_new_tokens={max_new_tokens}")
        forced_all[i, : len(f)] = f

    def forced_chunk(steps: int) -> np.ndarray:
        """``[b, chunk]`` tokens to feed from step ``steps`` (-1 = sample)."""
        out = np.full((b, chunk), -1, np.int32)
        part = forced_all[:, steps: steps + chunk]
        out[:, : part.shape[1]] = part
        return out

    t0 = time.perf_counter()
    state = start(params, jnp.asarray(tokens), jnp.asarray(valid), max_new_tokens, seed,
                  min_new_tokens, cfg=cfg, budget=budget, per_kv_head=policy == "longflow-per-head")
    jax.block_until_ready(state)
    t1 = time.perf_counter()
    buffer_bytes = state.buffer.nbytes
    out_tok, out_lp = [], []
    steps = 0
    while steps < max_new_tokens:
        # stop_ids were checked above: call the jitted function directly
        state, tok, lp = _decode_chunk(params, state, jnp.asarray(forced_chunk(steps)),
                                       sampling, cfg=cfg, stop_ids=stop_ids, attn_impl=attn_impl)
        tok = np.asarray(tok)
        out_tok.append(tok)
        out_lp.append(np.asarray(lp))
        steps += chunk
        if on_chunk is not None:
            on_chunk(tok)
        if bool(np.asarray(state.done).all()):
            break
    t2 = time.perf_counter()
    tok = np.concatenate(out_tok, axis=1)
    lp = np.concatenate(out_lp, axis=1)
    rows = [tok[i][tok[i] >= 0].tolist() for i in range(b)]
    lps = [lp[i][tok[i] >= 0] for i in range(b)]
    longest = max(len(p) + len(r) for p, r in zip(prompts, rows))
    itemsize = np.dtype(state.buffer.k.dtype).itemsize
    return GenerationResult(
        tokens=rows, logprobs=lps, prompt_tokens=[len(p) for p in prompts],
        prefill_seconds=t1 - t0, decode_seconds=t2 - t1, budget=budget, buffer_bytes=buffer_bytes,
        full_cache_bytes=b * longest * cfg.kv_bytes_per_token(itemsize),
    )


def score_continuation(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]],
                       continuations: Sequence[Sequence[int]], *, policy: str = "longflow",
                       budget: int | None = None, compression: float | None = None,
                       chunk: int = DEFAULT_CHUNK, attn_impl: str = "auto") -> list[np.ndarray]:
    """Teacher-forced log-probabilities of ``continuations`` given ``prompts``, through the eviction path.

    Each continuation token is fed exactly as a generated one would be, so
    the KV buffer evicts with the same rule as during generation.

    Args:
      params: parameter pytree (``load_model(...).params``).
      cfg: model configuration.
      prompts: ``batch`` lists of token ids (no padding).
      continuations: one non-empty list of token ids per prompt, scored
        token by token (``max_new_tokens`` is the longest of them).
      policy: ``"longflow"`` (default), ``"longflow-per-head"`` or ``"full"``
        (keeps every token: the longest prompt plus the longest continuation
        must fit in the model's context), as for :func:`generate`.
      budget: slots per layer for the longflow policies, in ``[2,
        prompt_bucket(longest prompt) + context]``; give it or
        ``compression``, not both (neither with ``"full"``).
      compression: fraction in (0, 1) of prompt + continuation evicted,
        instead of ``budget`` (see :func:`resolve_budget`).
      chunk: decode steps per jitted call, in [1, 65536] (cut as in
        :func:`generate`); it does not change the result.
      attn_impl: ``"auto"``, ``"xla"``, ``"triton"`` (CUDA) or ``"mosaic"``
        (TPU), see ``pallas_kernels``.

    Returns:
      per row, ``[len(continuation)]`` float32 log-probabilities under the
      model's raw distribution (no sampling transforms).

    Raises:
      TypeError / ValueError: as :func:`generate`; also continuations not one
        per prompt, an empty continuation, and with policy ``"full"`` a
        prompt + continuation longer than the context.
    """
    check_params_cfg(params, cfg)
    prompts = _check_token_rows(prompts, "prompts", cfg)
    continuations = _check_token_rows(continuations, "continuations", cfg)
    if len(continuations) != len(prompts):
        raise ValueError(f"continuations must have one entry per prompt ({len(prompts)}), got {len(continuations)}")
    for i, c in enumerate(continuations):
        if len(c) == 0:
            raise ValueError(f"continuation {i} is empty")
    n = max(len(c) for c in continuations)
    longest_prompt = max((len(p) for p in prompts), default=0)
    if policy == "full" and longest_prompt + n > cfg.max_position_embeddings:
        # generate would name max_new_tokens, which the caller never gave
        raise ValueError(f"the longest prompt + the longest continuation ({longest_prompt} + {n} tokens) "
                         f"exceed the model's context ({cfg.max_position_embeddings}); policy 'full' "
                         f"keeps every token of the batch's shared buffer")
    res = generate(params, cfg, prompts, max_new_tokens=n, policy=policy, budget=budget,
                   compression=compression, forced=continuations, chunk=chunk, attn_impl=attn_impl)
    return [lp[: len(c)] for lp, c in zip(res.logprobs, continuations)]
