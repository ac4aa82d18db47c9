"""The jitted decode loop: prefill -> chunks of decode steps (sample -> scatter -> attention + importance -> evict).

Everything per token happens inside ``jax.jit``: :func:`decode_chunk` runs a
fixed number of steps (``chunk``) with ``lax.scan``, the state (KV buffer
included) donated, so the host only sees the tokens once per chunk (streaming)
and nothing recompiles as generation gets longer.  ``max_new_tokens`` is a
traced value, so 50 and 5,000 tokens use the same compiled functions.

Padding scheme: prompts are left-padded to :func:`prompt_bucket` lengths,
i.e. the next power of two >= 16, so prompt length recompiles only per bucket.
Other static inputs compile again when they change: batch size, budget, chunk
length, ``stop_ids``, ``attn_impl``, the policy (``per_kv_head``), dtypes and
``do_sample``.

Token flow: prefill yields the logits for the first new token.  Each step
samples (or, for teacher forcing, takes the given token), emits it, and feeds
it through :func:`longflow_jax.model.decode_step`, which scatters its K/V into
the slot each layer chose at the previous step, attends, scores every slot's
importance, chooses the next slot to evict and yields the next logits.  Log-probabilities are those of the model's raw distribution
(before repetition penalty / temperature).

The host-side driver over these functions (token-id lists in, results out)
is ``longflow_jax.generation``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

try:  # public name; kept importable across jax versions
    from jax.core import Tracer as _Tracer
except ImportError:  # pragma: no cover
    from jax._src.core import Tracer as _Tracer

from longflow_jax.config import ModelConfig
from longflow_jax.kv_buffer import KVBuffer
from longflow_jax.model import check_int, check_params_cfg, check_prompt_arrays, decode_step, prefill
from longflow_jax.sampling import SamplingParams, check_sampling, sample_token
from pallas_kernels._validation import is_int as _is_int

DEFAULT_CHUNK = 32
MAX_CHUNK = 65536  # decode steps per jitted call; more only delays streaming and stop checks


@struct.dataclass
class DecodeState:
    """Everything the decode loop carries (a pytree; donated between chunks).

    Attributes:
      buffer: the fixed-size KV buffer.
      logits: ``[batch, vocab]`` float32 logits for the next token.
      position: ``[batch]`` int32 position of the next token fed.
      seen: ``[batch, vocab]`` bool, tokens in prompt or output (repetition penalty).
      done: ``[batch]`` bool, row finished (stop token or ``max_new_tokens``).
      num_generated: ``[batch]`` int32 tokens emitted so far.
      max_new_tokens: ``[]`` int32.
      min_new_tokens: ``[]`` int32; stop tokens are suppressed before this many
        tokens (HF ``MinNewTokensLengthLogitsProcessor``).
      key: PRNG key.
    """

    buffer: KVBuffer
    logits: jax.Array
    position: jax.Array
    seen: jax.Array
    done: jax.Array
    num_generated: jax.Array
    max_new_tokens: jax.Array
    min_new_tokens: jax.Array
    key: jax.Array


def prompt_bucket(length: int) -> int:
    """Padded length of a ``length``-token prompt: the next power of two, at least 16.

    Raises:
      ValueError: ``length`` not an integer >= 1.
    """
    if not _is_int(length) or length < 1:
        raise ValueError(f"length must be an integer >= 1 (prompt tokens), got {length!r}")
    return max(16, 1 << (int(length) - 1).bit_length())


def _check_budget(budget, cfg: ModelConfig, padded_len: int) -> int:
    """``budget`` as an int in ``[2, padded_len + context]``, the bound :func:`start` and ``generation.generate`` share.

    The largest buffer a policy needs is policy "full"'s: the padded prompt
    (``prefill`` keeps all of it, padding slots included, when it fits in
    ``budget - 1`` slots) plus ``max_new_tokens`` with ``prompt +
    max_new_tokens <= context``.  So the bound is the padded prompt length
    plus the model's context (8192 + 64 for a 40-token prompt and an 8192
    context), not the context alone.
    """
    return check_int("budget", budget, 2, padded_len + cfg.max_position_embeddings,
                     note=f" (padded prompt length {padded_len} + the model's context {cfg.max_position_embeddings})")


def _concrete(x) -> bool:
    """True for values known now (not abstract tracers inside an outer jit)."""
    return not isinstance(x, _Tracer)


def _check_start_args(params, tokens, key_valid, max_new_tokens, seed, min_new_tokens, cfg: ModelConfig,
                      budget) -> None:
    """Checks for :func:`start`: types, shapes, dtypes and static args always; values when concrete."""
    check_params_cfg(params, cfg)
    check_prompt_arrays(tokens, key_valid)
    _check_budget(budget, cfg, tokens.shape[1])
    for name, x, low in (("max_new_tokens", max_new_tokens, 1), ("min_new_tokens", min_new_tokens, 0),
                         ("seed", seed, 0)):
        int_like = _is_int(x) or (np.ndim(x) == 0 and jnp.issubdtype(getattr(x, "dtype", float), jnp.integer))
        if _concrete(x) and (not int_like or not low <= int(x) < 2**31):
            raise ValueError(f"{name} must be an integer in [{low}, 2**31 - 1], got {x!r}")
    if _concrete(max_new_tokens) and _concrete(min_new_tokens) and int(min_new_tokens) > int(max_new_tokens):
        raise ValueError(f"min_new_tokens ({int(min_new_tokens)}) must be <= max_new_tokens "
                         f"({int(max_new_tokens)})")
    if _concrete(tokens):
        ids = np.asarray(tokens)
        if ids.size and (ids.min() < 0 or ids.max() >= cfg.vocab_size):
            raise ValueError(f"tokens must be ids in [0, {cfg.vocab_size}), got values in "
                             f"[{ids.min()}, {ids.max()}]")
    if _concrete(key_valid):
        kv = np.asarray(key_valid)
        if not kv[:, -1].all() or (np.diff(kv.astype(np.int8), axis=1) < 0).any():
            raise ValueError("key_valid must mark left-padded rows (False padding first, then True up to the "
                             "last column; at least one token per row): pad prompts on the left, e.g. with "
                             "prompt_bucket")
        longest = int(kv.sum(axis=1).max())
        if longest > cfg.max_position_embeddings:  # as generate: RoPE positions past the context
            raise ValueError(f"a prompt has {longest} tokens (key_valid), longer than the model's "
                             f"context ({cfg.max_position_embeddings})")


def start(params, tokens, key_valid, max_new_tokens, seed, min_new_tokens=0, *, cfg: ModelConfig,
          budget: int, per_kv_head: bool = False) -> DecodeState:
    """Prefill and build the initial :class:`DecodeState` (checks its arguments, then runs jitted).

    Args:
      params: parameter pytree.
      tokens: ``[batch, T]`` int32 token ids in ``[0, vocab)``, left-padded.
      key_valid: ``[batch, T]`` bool, False at the left padding (at least one
        True per row, ending at the last column).
      max_new_tokens: integer >= 1.
      seed: integer PRNG seed.
      min_new_tokens: integer >= 0.
      cfg, budget, per_kv_head: static (see :func:`longflow_jax.model.prefill`);
        budget in ``[2, T + cfg.max_position_embeddings]`` (padded prompt
        length plus the model's context: the largest buffer a policy needs,
        the same bound as ``longflow_jax.generation.generate`` /
        ``resolve_budget``, which
        gives the usual values).

    Raises:
      TypeError: ``params`` not a parameter dict or ``cfg`` not a ModelConfig.
      ValueError: bad shapes, dtypes or budget; with concrete (not traced)
        arguments also ids outside the vocabulary, rows not left-padded, a
        prompt longer than the model's context (``cfg.max_position_embeddings``
        real tokens) and max_new_tokens / min_new_tokens / seed outside their
        ranges (at most 2**31 - 1).
    """
    _check_start_args(params, tokens, key_valid, max_new_tokens, seed, min_new_tokens, cfg, budget)
    return _start(params, tokens, key_valid, max_new_tokens, seed, min_new_tokens, cfg=cfg,
                  budget=budget, per_kv_head=per_kv_head)


@functools.partial(jax.jit, static_argnames=("cfg", "budget", "per_kv_head"))
def _start(params, tokens, key_valid, max_new_tokens, seed, min_new_tokens=0, *, cfg: ModelConfig,
           budget: int, per_kv_head: bool = False) -> DecodeState:
    logits, buffer = prefill(params, tokens, key_valid, cfg=cfg, budget=budget, per_kv_head=per_kv_head)
    b = tokens.shape[0]
    rows = jnp.broadcast_to(jnp.arange(b)[:, None], tokens.shape)
    seen = jnp.zeros((b, cfg.vocab_size), bool).at[rows, tokens].max(key_valid)
    return DecodeState(
        buffer=buffer, logits=logits,
        position=jnp.sum(key_valid, axis=1).astype(jnp.int32),
        seen=seen, done=jnp.zeros((b,), bool), num_generated=jnp.zeros((b,), jnp.int32),
        max_new_tokens=jnp.asarray(max_new_tokens, jnp.int32),
        min_new_tokens=jnp.asarray(min_new_tokens, jnp.int32),
        key=jax.random.key(seed),
    )


def decode_chunk(params, state: DecodeState, forced: jax.Array, sampling: SamplingParams, *,
                 cfg: ModelConfig, stop_ids: Sequence[int] = (), attn_impl: str = "auto"):
    """Run ``forced.shape[1]`` decode steps in one jitted ``lax.scan`` (arguments checked first).

    Each step samples (or takes the forced token), appends it, and runs
    :func:`decode_step` (attention over the KV buffer, LongFlow importance,
    eviction, scatter).  ``decode_chunk.lower`` / ``.trace`` / ``.eval_shape``
    work as on a ``jax.jit`` function.

    Args:
      params: parameter pytree (``load_model(...).params``).
      state: :class:`DecodeState` from :func:`start` or a previous chunk
        (donated: do not reuse the argument; a reused one raises ValueError).
      forced: ``[batch, chunk]`` integer tokens to emit instead of sampling
        (teacher forcing); any negative value = sample; ids must be below
        ``cfg.vocab_size`` (checked when ``forced`` is a NumPy array; a jax
        array is not read back, which would wait for the previous chunk).
      sampling: :class:`SamplingParams`.
      cfg: :class:`ModelConfig` (static: a new value compiles again).
      stop_ids: any sequence of ints in ``[0, vocab_size)`` that end a row
        (a static tuple).
      attn_impl: ``"auto"``, ``"xla"``, ``"triton"`` or ``"mosaic"`` (static).

    Returns:
      state: the new :class:`DecodeState`.
      tokens: ``[batch, chunk]`` int32 emitted tokens, ``-1`` after a row finished.
      logprobs: ``[batch, chunk]`` float32 log-probability of each emitted token
        under the model (0 where not emitted).

    Raises:
      TypeError: ``params`` not a parameter dict, ``state`` not a DecodeState,
        ``sampling`` not a SamplingParams, ``cfg`` not a ModelConfig,
        ``stop_ids`` not integers.
      ValueError: ``stop_ids`` outside the vocabulary, concrete ``sampling``
        values outside their ranges (see :meth:`SamplingParams.create`),
        ``forced`` not an integer ``[batch, steps]`` array or (NumPy) holding
        an id >= ``cfg.vocab_size``, a donated ``state`` passed again.
    """
    stop_ids = _check_chunk_args(params, state, sampling, cfg, stop_ids)
    # Host ids only: reading a device array would wait for the previous chunk (no overlap).
    if isinstance(forced, np.ndarray) and forced.size and np.issubdtype(forced.dtype, np.integer):
        top = int(forced.max())
        if top >= cfg.vocab_size:
            raise ValueError(f"forced ids must be < vocab_size ({cfg.vocab_size}) or negative "
                             f"(= sample), got {top}")
    return _decode_chunk(params, state, forced, sampling, cfg=cfg, stop_ids=stop_ids,
                         attn_impl=attn_impl)


def _check_chunk_args(params, state, sampling, cfg, stop_ids) -> tuple[int, ...]:
    """Checks for :func:`decode_chunk` (before tracing); returns ``stop_ids`` as a tuple."""
    check_params_cfg(params, cfg)
    if not isinstance(state, DecodeState):
        raise TypeError(f"state must be a DecodeState (from start or the previous decode_chunk), "
                        f"got {type(state).__name__}")
    if any(isinstance(x, jax.Array) and _concrete(x) and x.is_deleted()
           for x in jax.tree_util.tree_leaves(state)):
        raise ValueError("state was donated to an earlier decode_chunk call and its buffers are gone: "
                         "pass the state that call returned")
    check_sampling(sampling)
    return _check_stop_ids(stop_ids, cfg.vocab_size)


def _with_checked_args(stage):
    """``_decode_chunk.lower`` (etc.) checking its arguments as :func:`decode_chunk` does."""
    @functools.wraps(stage)
    def call(params, state, forced, sampling, *, cfg, stop_ids=(), **kwargs):
        stop_ids = _check_chunk_args(params, state, sampling, cfg, stop_ids)
        return stage(params, state, forced, sampling, cfg=cfg, stop_ids=stop_ids, **kwargs)
    return call


@functools.partial(jax.jit, static_argnames=("cfg", "stop_ids", "attn_impl"), donate_argnames=("state",))
def _decode_chunk(params, state: DecodeState, forced: jax.Array, sampling: SamplingParams, *,
                  cfg: ModelConfig, stop_ids: tuple[int, ...] = (), attn_impl: str = "auto"):
    """The jitted body of :func:`decode_chunk` (same arguments; ``stop_ids`` a tuple)."""
    batch = state.done.shape[0]
    if getattr(forced, "ndim", None) != 2 or forced.shape[0] != batch or not jnp.issubdtype(
            forced.dtype, jnp.integer):
        raise ValueError(f"forced must be an integer array [batch={batch}, steps] (-1 = sample), got "
                         f"{getattr(forced, 'dtype', type(forced).__name__)} {getattr(forced, 'shape', '')}")
    rows = jnp.arange(batch)
    stops = jnp.asarray(stop_ids if stop_ids else (-2,), jnp.int32)
    is_stop_vocab = jnp.isin(jnp.arange(cfg.vocab_size), stops)[None, :]

    def step(state: DecodeState, forced_t):
        key, sub = jax.random.split(state.key)
        too_early = (state.num_generated < state.min_new_tokens)[:, None] & is_stop_vocab
        sampled = sample_token(jnp.where(too_early, -jnp.inf, state.logits), state.seen, sub, sampling)
        token = jnp.where(forced_t >= 0, forced_t, sampled)
        logprob = jnp.take_along_axis(jax.nn.log_softmax(state.logits, axis=-1), token[:, None], axis=-1)[:, 0]
        emit = ~state.done
        num_generated = state.num_generated + emit
        done = state.done | (emit & jnp.isin(token, stops)) | (num_generated >= state.max_new_tokens)

        # Always run the model, even once every row is done (at most one chunk
        # of wasted steps per generation; the host stops calling after that).
        # A lax.cond that skips it made XLA copy the whole KV buffer every
        # step (both branches must return it): 2 x 6 GB at batch 64 x 4096
        # slots bf16 (benchmarks/NOTES.md, run 8).
        logits, buffer = decode_step(params, state.buffer, token, state.position, cfg=cfg,
                                     attn_impl=attn_impl)
        new = DecodeState(
            buffer=buffer, logits=logits, position=state.position + 1,
            seen=state.seen.at[rows, token].set(True), done=done, num_generated=num_generated,
            max_new_tokens=state.max_new_tokens, min_new_tokens=state.min_new_tokens, key=key,
        )
        return new, (jnp.where(emit, token, -1), jnp.where(emit, logprob, 0.0))

    state, (tokens, logprobs) = jax.lax.scan(step, state, forced.T)
    return state, tokens.T, logprobs.T


for _stage in ("lower", "trace", "eval_shape"):
    setattr(decode_chunk, _stage, _with_checked_args(getattr(_decode_chunk, _stage)))


def _check_stop_ids(stop_ids, vocab_size=None) -> tuple[int, ...]:
    """``stop_ids`` (an int or a sequence of ints) as a hashable tuple; TypeError / ValueError if bad."""
    if isinstance(stop_ids, (int, np.integer)):
        stop_ids = (stop_ids,)
    if stop_ids is None or isinstance(stop_ids, (str, bytes)) or not all(_is_int(s) for s in stop_ids):
        raise TypeError(f"stop_ids must be a sequence of integer token ids, got {stop_ids!r}")
    if vocab_size is not None and not all(0 <= s < vocab_size for s in stop_ids):
        raise ValueError(f"stop_ids must be token ids in [0, {vocab_size}), got {list(stop_ids)!r}")
    return tuple(int(s) for s in stop_ids)


_MOVED_TO_GENERATION = ("GenerationResult", "check_attn_impl", "generate", "resolve_budget",
                        "score_continuation")


def __getattr__(name: str):
    """Names that moved to ``longflow_jax.generation`` stay importable from here (deprecated)."""
    if name in _MOVED_TO_GENERATION:
        import warnings

        from longflow_jax import generation
        warnings.warn(f"longflow_jax.decode_loop.{name} moved to longflow_jax.generation.{name} "
                      f"(or import it from longflow_jax)", DeprecationWarning, stacklevel=2)
        return getattr(generation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
