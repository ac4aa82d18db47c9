"""Model loading: HF folders (single and sharded), GGUF, and every way a checkpoint can be bad."""

from __future__ import annotations

import json
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
