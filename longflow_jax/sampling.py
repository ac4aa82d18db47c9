"""Token sampling with Hugging Face ``generate`` semantics.

Order and meaning follow transformers' logits processors
(``transformers/generation/logits_process.py``): ``RepetitionPenaltyLogitsProcessor``
(divide positive / multiply negative logits of every token already in the
prompt or output), then ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
``TopPLogitsWarper`` (keep the smallest set of most likely tokens whose
probability reaches ``top_p``; always at least one; ties kept together, see
:func:`warp_logits`).  ``do_sample=False`` is
greedy (argmax after the repetition penalty), like HF.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

try:  # public name; kept importable across jax versions
    from jax.core import Tracer as _Tracer
except ImportError:  # pragma: no cover
    from jax._src.core import Tracer as _Tracer


@struct.dataclass
class SamplingParams:
    """Sampling settings; the float/int fields are traced, so changing them does not recompile.

    Attributes:
      do_sample: static; False = greedy.
      temperature: > 0 (only used when sampling).
      top_k: >= 0; 0 disables.
      top_p: in (0, 1]; 1 disables (keeps every token).
      repetition_penalty: > 0; 1 disables.
    """

    temperature: jax.Array
    top_k: jax.Array
    top_p: jax.Array
    repetition_penalty: jax.Array
    do_sample: bool = struct.field(pytree_node=False, default=False)

    @classmethod
    def create(cls, *, do_sample: bool | None = None, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, repetition_penalty: float = 1.0) -> "SamplingParams":
        """Validate and build.  ``temperature=0`` means greedy (``do_sample`` defaults to ``temperature > 0``).

        Each value is one number (Python, NumPy or a 0-d concrete array): one
        setting for the whole batch.

        Raises:
          TypeError: a value that is not a number (``do_sample`` not a bool).
          ValueError: a value that is not a scalar, temperature < 0, top_k outside
            [0, 2**31 - 1], top_p outside (0, 1], repetition_penalty <= 0, or a
            nonzero float that float32 (the dtype used on device) cannot hold as
            a normal number (magnitude outside [1.18e-38, 3.4e38]: it would
            become 0, a subnormal or inf).
        """
        values = {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                  "repetition_penalty": repetition_penalty}
        for field, x in values.items():
            if np.ndim(x) != 0:
                raise ValueError(f"{field} must be a single number, got shape {np.shape(x)}")
        if do_sample is None:  # the value check below reports a non-number temperature
            do_sample = bool(_is_number(temperature) and np.asarray(temperature) > 0)
        _check_values(values, do_sample, prefix="")
        return cls(
            temperature=jnp.float32(temperature if temperature > 0 else 1.0),
            top_k=jnp.int32(top_k), top_p=jnp.float32(top_p),
            repetition_penalty=jnp.float32(repetition_penalty), do_sample=bool(do_sample),
        )

    def check(self, name: str = "sampling") -> SamplingParams:
        """Validate the fields of an instance built directly (``SamplingParams(...)``); return it.

        The same rules as :meth:`create`.  Traced or abstract fields (inside
        ``jit``, ``ShapeDtypeStruct``) are not checked: construction itself does
        not validate, since JAX rebuilds pytrees with arbitrary leaves.

        Raises:
          TypeError / ValueError: as :meth:`create`, naming ``{name}.{field}``.
        """
        _check_values({f: getattr(self, f) for f in ("temperature", "top_k", "top_p", "repetition_penalty")},
                      self.do_sample, prefix=f"{name}.")
        return self


def check_sampling(sampling, name: str = "sampling") -> SamplingParams:
    """``sampling`` checked to be a :class:`SamplingParams` with valid (concrete) values.

    Raises:
      TypeError: not a SamplingParams, or a field that is not a number.
      ValueError: a field outside its range (see :meth:`SamplingParams.create`).
    """
    if not isinstance(sampling, SamplingParams):
        raise TypeError(f"{name} must be a SamplingParams (SamplingParams.create(...)), "
                        f"got {type(sampling).__name__}")
    return sampling.check(name)


_RULES = {  # field: (integer dtype required, predicate on the values, message)
    "temperature": (False, lambda x: x >= 0, "a finite number >= 0 (0 = greedy)"),
    "top_k": (True, lambda x: (x >= 0) & (x < 2**31),
              "an integer in [0, 2**31 - 1] (0 disables; values above the vocabulary size keep every token)"),
    "top_p": (False, lambda x: (x > 0) & (x <= 1), "in (0, 1]"),
    "repetition_penalty": (False, lambda x: x > 0, "a finite number > 0 (1 disables)"),
}


_F32 = np.finfo(np.float32)


def _is_number(x) -> bool:
    """A concrete real number (Python, NumPy, 0-d or n-d array of a real dtype; not a bool)."""
    if isinstance(x, (bool, np.bool_, _Tracer, jax.ShapeDtypeStruct)):
        return False
    if not isinstance(x, (int, float, np.integer, np.floating, np.ndarray, jax.Array)):
        return False
    dtype = np.asarray(x).dtype
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def _check_values(values: dict, do_sample, prefix: str) -> None:
    """Check the concrete ones of ``values`` (Python / NumPy numbers or arrays, concrete jax arrays)."""
    if not isinstance(do_sample, (bool, np.bool_)):
        raise TypeError(f"{prefix}do_sample must be a bool, got {type(do_sample).__name__}")
    for field, x in values.items():
        if isinstance(x, (_Tracer, jax.ShapeDtypeStruct)):
            continue  # traced / abstract: no value to check
        integer, ok, rule = _RULES[field]
        if not isinstance(x, (int, float, np.integer, np.floating, np.ndarray, jax.Array)) or isinstance(
                x, (bool, np.bool_)):
            raise TypeError(f"{prefix}{field} must be {rule}, got {type(x).__name__} {x!r}")
        arr = np.asarray(x)
        shown = arr.item() if arr.ndim == 0 else arr.tolist()
        # jnp.issubdtype: NumPy does not count bfloat16 as a number
        kind_ok = jnp.issubdtype(arr.dtype, jnp.integer) if integer else (
            jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating))
        if not kind_ok or not np.all(np.isfinite(arr)) or not np.all(ok(arr)):
            raise ValueError(f"{prefix}{field} must be {rule}, got {shown!r}")
        if not integer:  # the value is used as float32: it must stay the number it was
            with np.errstate(over="ignore", under="ignore"):
                arr32 = arr.astype(np.float32)
            lost = (arr != 0) & ~((np.abs(arr32) >= _F32.tiny) & (np.abs(arr32) <= _F32.max))
            if np.any(lost):
                raise ValueError(f"{prefix}{field} must be {rule}, as a normal float32 (magnitude in "
                                 f"[{_F32.tiny:.3g}, {_F32.max:.3g}], or 0): {shown!r} would become 0, "
                                 f"a subnormal or inf on the device")
        if field == "temperature" and do_sample and np.any(arr == 0):
            raise ValueError(f"{prefix}temperature must be > 0 when do_sample=True")


def apply_repetition_penalty(logits: jax.Array, seen: jax.Array, penalty: jax.Array) -> jax.Array:
    """HF ``RepetitionPenaltyLogitsProcessor``: penalise every token already in the prompt or output.

    Args:
      logits: ``[B, V]`` float32.
      seen: ``[B, V]`` bool, True for tokens to penalise (the decode loop sets
        it for every real prompt token, never for left padding, and for every
        emitted token, one step at a time).
      penalty: scalar > 0; 1 leaves the logits unchanged.

    Returns:
      ``[B, V]`` float32: at seen tokens, positive logits divided by
      ``penalty`` and negative ones multiplied by it (0 stays 0, ``-inf``
      stays ``-inf``, ``+inf`` stays ``+inf``); other tokens unchanged.
    """
    penalised = jnp.where(logits < 0, logits * penalty, logits / penalty)
    return jnp.where(seen, penalised, logits)


def warp_logits(logits: jax.Array, sp: SamplingParams) -> jax.Array:
    """Temperature, then top-k, then top-p (HF order); removed tokens get ``-inf``.

    Args:
      logits: ``[B, V]`` float32 (``-inf`` allowed: such tokens stay ``-inf``
        and carry no probability; a row needs at least one finite logit; a
        row with a ``+inf`` logit is not shifted, and only its ``+inf``
        tokens survive the filters).
      sp: the sampling settings (``temperature`` > 0).

    Returns:
      ``[B, V]`` float32: ``(logits - row max) / temperature`` where kept,
      ``-inf`` where removed.  The shift leaves the sampling distribution
      (the softmax) unchanged and keeps a tiny temperature from overflowing
      the division: the row's maxima map to 0, every other token to a large
      negative number or ``-inf``, so the draw becomes greedy, as the limit
      ``temperature -> 0`` should.

    Tie rules (both filters keep every token tied with the last one they keep,
    so equal logits are always treated alike):

    * top-k (``top_k > 0``): keep every token whose logit is >= the k-th
      largest, as HF's ``TopKLogitsWarper``; ties at the k-th value can keep
      more than k tokens.  ``top_k`` >= vocabulary size, or 0, keeps all.
    * top-p (``top_p < 1``): sort the (top-k filtered) probabilities in
      descending order and take the shortest prefix whose mass reaches
      ``top_p`` (at least one token); keep every token whose logit is >= the
      smallest logit of that prefix.  Where the prefix ends inside a run of
      tied logits, all of them are kept; HF's ``TopPLogitsWarper`` keeps only
      those its stable ascending sort puts last (e.g. logits ``[2, 1, 1, 1,
      0]``, ``top_p=0.6``: this keeps tokens 0-3, HF keeps 0 and 3).  Without
      ties the kept set is HF's.
    * ``top_p >= 1`` removes nothing (HF skips the warper at 1.0): a float32
      cumulative sum can reach 1 before the tail of a large vocabulary.
    """
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    logits = (logits - jnp.where(jnp.isfinite(row_max), row_max, 0.0)) / sp.temperature
    sorted_desc = jnp.sort(logits, axis=-1)[:, ::-1]
    vocab = logits.shape[-1]
    k = jnp.where(sp.top_k > 0, jnp.minimum(sp.top_k, vocab), vocab)
    kth = jnp.take_along_axis(sorted_desc, jnp.broadcast_to(k - 1, (logits.shape[0], 1)), axis=-1)
    logits = jnp.where(logits < kth, -jnp.inf, logits)
    # Top-p on the (already top-k filtered) distribution: keep a sorted position
    # if the probability mass strictly above it is < top_p.
    sorted_desc = jnp.where(sorted_desc < kth, -jnp.inf, sorted_desc)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    mass_above = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (mass_above < sp.top_p) | (jnp.arange(vocab) == 0) | (sp.top_p >= 1)
    # The smallest kept logit is the threshold: every token tied with it is kept
    # too (see the docstring; HF keeps only some of the tied tokens).
    threshold = jnp.min(jnp.where(keep_sorted, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < threshold, -jnp.inf, logits)


def sample_token(logits: jax.Array, seen: jax.Array, key: jax.Array, sp: SamplingParams) -> jax.Array:
    """Pick the next token of every row: repetition penalty, then greedy or warped sampling.

    Args:
      logits: ``[B, V]`` float32 raw model logits (``-inf`` marks a token that
        may not be picked, e.g. a stop token before ``min_new_tokens``).
      seen: ``[B, V]`` bool, tokens penalised by ``sp.repetition_penalty``
        (see :func:`apply_repetition_penalty`).
      key: PRNG key (used only when ``sp.do_sample``).
      sp: the sampling settings.

    Returns:
      ``[B]`` int32 token ids.  Greedy (``do_sample=False``): the argmax of
      the penalised logits, the lowest token id among equal maxima.
      Sampling: a draw from ``softmax(warp_logits(penalised, sp))``; tokens at
      ``-inf`` are never drawn, tied logits are equally likely.
    """
    logits = apply_repetition_penalty(logits, seen, sp.repetition_penalty)
    if not sp.do_sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, warp_logits(logits, sp), axis=-1).astype(jnp.int32)
