"""Model loading: HF folders (single and sharded), GGUF, and every way a checkpoint can be bad."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from longflow_jax.config import UnsupportedModelError
from longflow_jax.loading import ModelLoadError, load_model
from conftest import make_tiny_checkpoint


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_src")
    make_tiny_checkpoint("llama", str(path), seed=1)
    return path


def _copy(src, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def _copy_with_config(src, tmp_path, drop=(), **changes):
    """A copy of checkpoint ``src`` whose config.json has ``drop`` removed and ``changes`` set."""
    d = _copy(src, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    for key in drop:
        cfg.pop(key, None)
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_sharded_checkpoint_loads_same_weights(llama_dir, tmp_path):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir))
    sharded = tmp_path / "sharded"
    model.save_pretrained(str(sharded), max_shard_size="100KB")
    shutil.copy(llama_dir / "tokenizer.json", sharded)
    shutil.copy(llama_dir / "tokenizer_config.json", sharded)
    assert (sharded / "model.safetensors.index.json").exists()
    a, b = load_model(llama_dir), load_model(sharded)
    import jax

    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    assert torch.allclose(model.lm_head.weight, torch.tensor(np.asarray(b.params["lm_head"]).T))


def test_bfloat16_load(llama_dir, tmp_path):
    import jax.numpy as jnp
    import torch
    import transformers

    # A checkpoint stored in bf16 (as most HF releases are) loads too.
    bf16_dir = tmp_path / "bf16"
    transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir)).to(torch.bfloat16).save_pretrained(str(bf16_dir))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(llama_dir / f, bf16_dir)
    m = load_model(bf16_dir, dtype=jnp.bfloat16)  # the dtype object works as well as its name
    assert m.params["layers"]["wq"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(llama_dir, dtype="float16")


def test_unsupported_architecture_is_named(llama_dir, tmp_path):
    d = _copy_with_config(llama_dir, tmp_path, architectures=["MistralForCausalLM"])
    with pytest.raises(UnsupportedModelError, match="MistralForCausalLM.*supported: LlamaForCausalLM"):
        load_model(d)


def test_unsupported_rope_scaling_is_named(llama_dir, tmp_path):
    d = _copy_with_config(llama_dir, tmp_path, drop=("rope_parameters",),
                          rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(UnsupportedModelError, match="'yarn'"):
        load_model(d)


def test_weights_that_do_not_match_the_config(llama_dir, tmp_path):
    d = _copy_with_config(llama_dir, tmp_path, intermediate_size=96)
    with pytest.raises(ModelLoadError, match="mlp.gate_proj.weight has shape \\(128, 64\\), expected \\(96, 64\\)"):
        load_model(d)


def test_missing_weights(llama_dir, tmp_path):
    d = _copy(llama_dir, tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_model(d)


def test_corrupt_weights(llama_dir, tmp_path):
    d = _copy(llama_dir, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(d)


def test_missing_tokenizer(llama_dir, tmp_path):
    d = _copy(llama_dir, tmp_path)
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_model(d)


def test_corrupt_tokenizer(llama_dir, tmp_path):
    d = _copy(llama_dir, tmp_path)
    (d / "tokenizer.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_model(d)


def test_tokenizer_config_without_a_tokenizer_file_is_named(llama_dir, tmp_path):
    d = _copy(llama_dir, tmp_path)
    (d / "tokenizer.json").unlink()  # tokenizer_config.json stays: transformers would ask for sentencepiece
    with pytest.raises(ModelLoadError, match="has no tokenizer: expected one of tokenizer.json"):
        load_model(d)


def test_path_of_the_wrong_type():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike .* got int"):
        load_model(123)


def test_missing_path_and_config(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="model path is empty"):  # not the current folder
        load_model("")
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}')
    with pytest.raises(ModelLoadError, match="has no 'num_attention_heads' field"):
        load_model(tmp_path)


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(200)))
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(bad)


def test_gguf_q_k_permutation_roundtrip(rng):
    """Our inverse undoes llama.cpp's permutation (convert_hf_to_gguf.LlamaModel.permute)."""
    from longflow_jax.loading import _undo_llama_permute

    heads, d, e = 3, 8, 5
    w = rng.normal(size=(heads * d, e))
    permuted = w.reshape(heads, 2, d // 2, e).swapaxes(1, 2).reshape(w.shape)  # llama.cpp's forward permute
    np.testing.assert_array_equal(_undo_llama_permute(permuted, heads), w)


# ----------------------------------------------------------------------------- GGUF RoPE scaling

_HEAD_DIM, _THETA = 64, 500000.0


def _gguf_meta(**extra):
    """Llama-3-like GGUF metadata (4 heads of 64, theta 500000) plus ``extra`` keys (``llama.`` added)."""
    meta = {"general.architecture": "llama", "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
            "llama.embedding_length": 4 * _HEAD_DIM, "llama.feed_forward_length": 512, "llama.block_count": 2,
            "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.freq_base": _THETA,
            "llama.context_length": 131072, "llama.rope.dimension_count": _HEAD_DIM}
    meta.update({f"llama.{k}": v for k, v in extra.items()})
    return meta


def _llama_cpp_rope_factors(factor, low=1.0, high=4.0, old=8192):
    """``rope_freqs.weight`` as llama.cpp's convert_hf_to_gguf.py writes it for HF llama3 scaling."""
    freqs = 1.0 / (np.float32(_THETA) ** (np.arange(0, _HEAD_DIM, 2, dtype=np.float32) / _HEAD_DIM))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, np.float32)


_SHAPES = {"token_embd.weight": (4 * _HEAD_DIM, 1000), "output.weight": (4 * _HEAD_DIM, 1000)}


@pytest.mark.parametrize("keys, rope", [
    ({}, ("default", 1.0)),
    ({"rope.scaling.type": "none", "rope.scaling.factor": 4.0}, ("default", 1.0)),  # llama.cpp: none ignores it
    ({"rope.scaling.type": "linear", "rope.scaling.factor": 4.0}, ("linear", 4.0)),
    ({"rope.scaling.factor": 2.0}, ("linear", 2.0)),  # llama.cpp reads a missing type as linear
    ({"rope.scale_linear": 2.0}, ("linear", 2.0)),  # the older key
])
def test_gguf_rope_scaling_keys_map_to_the_config(keys, rope):
    from longflow_jax.loading import gguf_config

    cfg = gguf_config(_gguf_meta(**keys), _SHAPES)
    assert (cfg.rope_type, cfg.rope_factor) == rope


@pytest.mark.parametrize("factor, old, keys", [(8.0, 8192, {}), (32.0, 8192, {}),
                                               (4.0, 4096, {"rope.scaling.original_context_length": 4096})])
def test_gguf_rope_freqs_of_llama3_scaling_load_as_llama3(factor, old, keys):
    """Llama 3.1 (factor 8) / 3.2 (factor 32) GGUFs carry llama3 RoPE as rope_freqs.weight: the
    config becomes HF's llama3 rule, whose frequencies are llama.cpp's (base / factors)."""
    from longflow_jax.layers import rope_inv_freq
    from longflow_jax.loading import gguf_config

    factors = _llama_cpp_rope_factors(factor, old=old)
    assert 1 < len(set(factors.tolist())) < len(factors) - 2  # all three bands present
    cfg = gguf_config(_gguf_meta(**keys), _SHAPES, rope_freqs=factors)
    assert (cfg.rope_type, cfg.rope_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor,
            cfg.rope_original_max_position) == ("llama3", factor, 1.0, 4.0, old)
    base = 1.0 / (_THETA ** (np.arange(0, _HEAD_DIM, 2) / _HEAD_DIM))
    np.testing.assert_allclose(rope_inv_freq(cfg), base / factors, rtol=1e-5)
    assert gguf_config(_gguf_meta(), _SHAPES, rope_freqs=np.ones(_HEAD_DIM // 2)).rope_type == "default"


@pytest.mark.parametrize("keys, freqs, match", [
    ({"rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
      "rope.scaling.original_context_length": 32768}, None, "rope.scaling.type 'yarn' is not supported"),
    ({"rope.scaling.type": "longrope"}, None, "'longrope' is not supported"),
    ({}, _llama_cpp_rope_factors(8.0, high=2.0), "rope_freqs.weight holds per-frequency RoPE factors that do "
                                                 "not match Llama 3 scaling"),
    ({}, np.linspace(1, 3, _HEAD_DIM // 2), "do not match Llama 3 scaling"),
    ({}, np.ones(7), "rope_freqs.weight must hold 32 positive RoPE factors"),
    ({"rope.scaling.type": "linear", "rope.scaling.factor": 2.0}, _llama_cpp_rope_factors(8.0),
     "rope_freqs.weight together with linear RoPE scaling"),
    ({"rope.dimension_count": 32}, None, "rope.dimension_count = 32 .* not supported"),
])
def test_gguf_rope_scaling_we_cannot_run_is_refused(keys, freqs, match):
    from longflow_jax.loading import gguf_config

    with pytest.raises(UnsupportedModelError, match=match):
        gguf_config(_gguf_meta(**keys), _SHAPES, rope_freqs=freqs)


def test_gguf_file_with_unsupported_rope_is_refused_by_load_model(tmp_path):
    """The file path reads the keys and the rope_freqs.weight tensor before any weight."""
    import gguf

    def write(name, keys, freqs):
        path = tmp_path / name
        w = gguf.GGUFWriter(str(path), "llama")
        for key, value in _gguf_meta(**keys).items():
            if key != "general.architecture":
                (w.add_string if isinstance(value, str) else w.add_float32 if isinstance(value, float)
                 else w.add_uint32)(key, value)
        w.add_tensor("token_embd.weight", np.zeros((1000, 4 * _HEAD_DIM), np.float32))
        if freqs is not None:
            w.add_tensor("rope_freqs.weight", np.asarray(freqs, np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    with pytest.raises(UnsupportedModelError, match="rope_freqs.weight holds per-frequency RoPE factors"):
        load_model(write("freqs.gguf", {}, _llama_cpp_rope_factors(8.0, old=2048)))
    with pytest.raises(UnsupportedModelError, match="'yarn' is not supported"):
        load_model(write("yarn.gguf", {"rope.scaling.type": "yarn", "rope.scaling.factor": 4.0}, None))
