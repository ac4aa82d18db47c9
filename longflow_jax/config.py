"""Model configuration: the static shape facts of a decoder, read from a HF config.json or GGUF metadata.

Follows the field names of transformers' ``LlamaConfig``, ``Qwen2Config`` and
``Qwen3Config`` (``transformers/models/{llama,qwen2,qwen3}/configuration_*.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


class UnsupportedModelError(ValueError):
    """The checkpoint describes a model this package cannot run."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static description of a Llama-family decoder (hashable: usable as a jit static argument).

    Attributes:
      architecture: one of ``SUPPORTED_ARCHITECTURES``.
      vocab_size, hidden_size, intermediate_size, num_layers: model sizes.
      num_q_heads, num_kv_heads, head_dim: attention heads (GQA when
        ``num_q_heads > num_kv_heads``).
      rms_norm_eps: RMSNorm epsilon.
      rope_theta: RoPE base.
      rope_type: "default", "linear" or "llama3" (HF ``rope_scaling``).
      rope_factor, rope_low_freq_factor, rope_high_freq_factor,
      rope_original_max_position: parameters of the scaled RoPE variants.
      max_position_embeddings: the model's context length in tokens.
      tie_word_embeddings: the LM head reuses the embedding matrix.
      qkv_bias: q/k/v projections carry a bias (Qwen2; Llama/Qwen3 with attention_bias).
      o_bias: the output projection carries a bias (Llama/Qwen3 with attention_bias).
      qk_norm: per-head RMSNorm on q and k before RoPE (Qwen3).
    """

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: str = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False

    def __post_init__(self):
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise UnsupportedModelError(
                f"architecture {self.architecture!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_q_heads",
                     "num_kv_heads", "head_dim", "max_position_embeddings"):
            if int(getattr(self, name)) < 1:
                raise UnsupportedModelError(f"config field {name} must be >= 1, got {getattr(self, name)}")
        if self.num_q_heads % self.num_kv_heads:
            raise UnsupportedModelError(
                f"num_attention_heads ({self.num_q_heads}) must be a multiple of num_key_value_heads ({self.num_kv_heads})"
            )
        if self.head_dim % 2:
            raise UnsupportedModelError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.rope_type not in ("default", "linear", "llama3"):
            raise UnsupportedModelError(
                f"rope_scaling type {self.rope_type!r} is not supported; supported: default, linear, llama3"
            )

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "ModelConfig":
        """Build from a Hugging Face ``config.json`` dict.

        Raises:
          UnsupportedModelError: unknown architecture, sliding-window attention,
            MLP bias, an unsupported ``rope_scaling`` type, a size field < 1,
            attention heads not a multiple of KV heads, or an odd head_dim
            (the message names it).
          KeyError: a required field (e.g. ``num_attention_heads``,
            ``vocab_size``) missing from ``hf``.
        """
        archs = hf.get("architectures") or []
        arch = archs[0] if archs else {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                                       "qwen3": "Qwen3ForCausalLM"}.get(hf.get("model_type", ""), "")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise UnsupportedModelError(
                f"architecture {arch or hf.get('model_type')!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        if hf.get("use_sliding_window"):
            raise UnsupportedModelError("use_sliding_window=True is not supported (sliding-window attention)")
        if hf.get("mlp_bias"):
            raise UnsupportedModelError("mlp_bias=True is not supported")
        n_heads = int(hf["num_attention_heads"])
        head_dim = hf.get("head_dim") or int(hf["hidden_size"]) // n_heads
        rope_scaling = hf.get("rope_scaling") or {}
        # transformers 5 moves rope_theta into rope_parameters.
        rope_params = hf.get("rope_parameters") or {}
        if not rope_scaling and rope_params.get("rope_type", "default") != "default":
            rope_scaling = rope_params
        rope_type = rope_scaling.get("rope_type", rope_scaling.get("type", "default")) if rope_scaling else "default"
        attention_bias = bool(hf.get("attention_bias", False))
        is_qwen2 = arch == "Qwen2ForCausalLM"
        return cls(
            architecture=arch,
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_layers=int(hf["num_hidden_layers"]),
            num_q_heads=n_heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or n_heads),
            head_dim=int(head_dim),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=float(hf.get("rope_theta", rope_params.get("rope_theta", 10000.0))),
            rope_type=rope_type,
            rope_factor=float(rope_scaling.get("factor", 1.0)),
            rope_low_freq_factor=float(rope_scaling.get("low_freq_factor", 1.0)),
            rope_high_freq_factor=float(rope_scaling.get("high_freq_factor", 4.0)),
            rope_original_max_position=int(rope_scaling.get("original_max_position_embeddings", 8192)),
            max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=True if is_qwen2 else attention_bias,
            o_bias=False if is_qwen2 else attention_bias,
            qk_norm=arch == "Qwen3ForCausalLM",
        )

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Bytes of K+V one token occupies across all layers."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes
