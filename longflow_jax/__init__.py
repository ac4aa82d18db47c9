"""longflow-jax: LongFlow (arXiv 2603.11504) fixed-budget KV-cache decoding in JAX.

Data flow: :func:`load_model` -> :func:`start` (prefill, SnapKV) -> :func:`decode_chunk`
(jitted steps: sample -> scatter into the evicted slot -> attention + importance -> choose the next slot).  :func:`generate`
drives it from the host; :func:`score_continuation` teacher-forces a continuation.
"""

from longflow_jax.config import ModelConfig, UnsupportedModelError
from longflow_jax.decode_loop import DecodeState, decode_chunk, prompt_bucket, start
from longflow_jax.generation import GenerationResult, generate, resolve_budget, score_continuation
from longflow_jax.kv_buffer import KVBuffer
from longflow_jax.loading import LoadedModel, ModelLoadError, default_model_path, load_model
from longflow_jax.model import Decoder, decode_step, empty_buffer, prefill
from longflow_jax.sampling import SamplingParams

__all__ = [
    "DecodeState", "Decoder", "GenerationResult", "KVBuffer", "LoadedModel", "ModelConfig", "ModelLoadError",
    "SamplingParams", "UnsupportedModelError", "decode_chunk", "decode_step", "default_model_path", "empty_buffer",
    "generate", "load_model", "prefill", "prompt_bucket", "resolve_budget", "score_continuation", "start",
]
