"""Token sampling with Hugging Face ``generate`` semantics.

Order and meaning follow transformers' logits processors
(``transformers/generation/logits_process.py``): ``RepetitionPenaltyLogitsProcessor``
(divide positive / multiply negative logits of every token already in the
prompt or output), then ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
``TopPLogitsWarper`` (keep the smallest set of most likely tokens whose
probability reaches ``top_p``; always at least one).  ``do_sample=False`` is
greedy (argmax after the repetition penalty), like HF.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class SamplingParams:
    """Sampling settings; the float/int fields are traced, so changing them does not recompile.

    Attributes:
      do_sample: static; False = greedy.
      temperature: > 0 (only used when sampling).
      top_k: >= 0; 0 disables.
      top_p: in (0, 1]; 1 disables.
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

        Raises:
          ValueError: temperature < 0, top_k outside [0, 2**31 - 1], top_p outside (0, 1],
            repetition_penalty <= 0.
        """
        def finite(x):
            return isinstance(x, (int, float, np.integer, np.floating)) and np.isfinite(x)

        if not finite(temperature) or not temperature >= 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
        if not isinstance(top_k, (int, np.integer)) or not 0 <= top_k < 2**31:
            raise ValueError(f"top_k must be an integer in [0, 2**31 - 1] (0 disables; values above the "
                             f"vocabulary size keep every token), got {top_k!r}")
        if not finite(top_p) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        if not finite(repetition_penalty) or not repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 disables), got {repetition_penalty!r}")
        if do_sample is None:
            do_sample = temperature > 0
        if do_sample and temperature == 0:
            raise ValueError("temperature must be > 0 when do_sample=True")
        return cls(
            temperature=jnp.float32(temperature if temperature > 0 else 1.0),
            top_k=jnp.int32(top_k), top_p=jnp.float32(top_p),
            repetition_penalty=jnp.float32(repetition_penalty), do_sample=bool(do_sample),
        )


def apply_repetition_penalty(logits: jax.Array, seen: jax.Array, penalty: jax.Array) -> jax.Array:
    """HF ``RepetitionPenaltyLogitsProcessor``: logits ``[B, V]`` f32, seen ``[B, V]`` bool."""
    penalised = jnp.where(logits < 0, logits * penalty, logits / penalty)
    return jnp.where(seen, penalised, logits)


def warp_logits(logits: jax.Array, sp: SamplingParams) -> jax.Array:
    """Temperature, top-k, top-p (HF order); removed tokens get -inf."""
    logits = logits / sp.temperature
    sorted_desc = jnp.sort(logits, axis=-1)[:, ::-1]
    vocab = logits.shape[-1]
    k = jnp.where(sp.top_k > 0, jnp.minimum(sp.top_k, vocab), vocab)
    kth = jnp.take_along_axis(sorted_desc, jnp.broadcast_to(k - 1, (logits.shape[0], 1)), axis=-1)
    logits = jnp.where(logits < kth, -jnp.inf, logits)
    # Top-p on the (already top-k filtered) distribution: keep a token if the
    # probability mass strictly above it is < top_p.
    sorted_desc = jnp.where(sorted_desc < kth, -jnp.inf, sorted_desc)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    mass_above = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (mass_above < sp.top_p) | (jnp.arange(vocab) == 0)
    # Smallest kept logit is the threshold (ties are kept, as in HF's scatter).
    threshold = jnp.min(jnp.where(keep_sorted, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < threshold, -jnp.inf, logits)


def sample_token(logits: jax.Array, seen: jax.Array, key: jax.Array, sp: SamplingParams) -> jax.Array:
    """Pick the next token ``[B]`` int32 from fp32 logits ``[B, V]``."""
    logits = apply_repetition_penalty(logits, seen, sp.repetition_penalty)
    if not sp.do_sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, warp_logits(logits, sp), axis=-1).astype(jnp.int32)

