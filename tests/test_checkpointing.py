"""Converted Orbax checkpoints: exact round trip, dtype handling, CLI conversion, and bad directories."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_tiny_checkpoint

from longflow_jax.checkpointing import MARKER, save_checkpoint
from longflow_jax.cli import main
from longflow_jax.loading import ModelLoadError, load_model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt_qwen3")
    make_tiny_checkpoint("qwen3", str(path), seed=3)
    return path


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return load_model(hf_dir)


def test_round_trip_is_exact(hf_model, tmp_path):
    path = save_checkpoint(hf_model, tmp_path / "ckpt")
    assert (path / MARKER).is_file() and (path / "params").is_dir()
    back = load_model(path)
    assert back.cfg == hf_model.cfg and back.stop_ids == hf_model.stop_ids
    assert jax.tree.structure(back.params) == jax.tree.structure(hf_model.params)
    jax.tree.map(np.testing.assert_array_equal, back.params, hf_model.params)
    text = "w5 w17 w3 w120"
    assert back.tokenizer(text).input_ids == hf_model.tokenizer(text).input_ids
    assert back.tokenizer.eos_token_id == hf_model.tokenizer.eos_token_id


def test_bfloat16_checkpoint_loads_in_either_dtype(hf_dir, tmp_path):
    bf16 = load_model(hf_dir, dtype="bfloat16")
    path = save_checkpoint(bf16, tmp_path / "bf16")
    assert json.loads((path / MARKER).read_text())["dtype"] == "bfloat16"
    as_bf16 = load_model(path)  # the saved dtype by default
    as_f32 = load_model(path, dtype="float32")
    assert as_bf16.params["layers"]["wq"].dtype == jnp.bfloat16
    assert as_f32.params["layers"]["wq"].dtype == jnp.float32
    jax.tree.map(np.testing.assert_array_equal, as_bf16.params, bf16.params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b.astype(jnp.float32)),
                 as_f32.params, bf16.params)


def test_never_overwrites(hf_model, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        save_checkpoint(hf_model, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_failed_save_leaves_nothing_and_can_be_retried(hf_model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(hf_model.tokenizer), "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(hf_model, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []  # no target, no staging folder
    monkeypatch.undo()
    back = load_model(save_checkpoint(hf_model, tmp_path / "ckpt"))
    jax.tree.map(np.testing.assert_array_equal, back.params, hf_model.params)


def test_params_without_marker_is_named_incomplete(hf_model, tmp_path):
    path = save_checkpoint(hf_model, tmp_path / "ckpt")
    (path / MARKER).unlink()
    with pytest.raises(ModelLoadError, match="incomplete converted checkpoint"):
        load_model(path)


def test_bad_checkpoints_raise_model_load_error(hf_model, tmp_path):
    path = save_checkpoint(hf_model, tmp_path / "ckpt")
    meta = json.loads((path / MARKER).read_text())

    (path / MARKER).write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ModelLoadError, match="version"):
        load_model(path)

    wrong = dict(meta["config"], hidden_size=meta["config"]["hidden_size"] * 2)
    (path / MARKER).write_text(json.dumps({**meta, "config": wrong}))
    with pytest.raises(ModelLoadError, match="parameter embed .* has shape .* its config needs"):
        load_model(path)

    (path / MARKER).write_text(json.dumps(meta))
    shutil.rmtree(path / "params")
    with pytest.raises(ModelLoadError, match="without its params/ folder"):
        load_model(path)
    (path / "params").mkdir()
    with pytest.raises(ModelLoadError, match="no readable parameters"):
        load_model(path)

    (path / MARKER).write_text("{ not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_model(path)


def test_cli_converts_then_generates_the_same_tokens(hf_dir, tmp_path, capsys):
    target = tmp_path / "converted"
    assert main(["--model", str(hf_dir), "--save-checkpoint", str(target)]) == 0
    assert "load it with --model" in capsys.readouterr().out
    outputs = []
    for model in (hf_dir, target):
        out = tmp_path / f"out_{len(outputs)}.jsonl"
        args = ["--model", str(model), "--prompt", "w7 w8 w9 w10", "--budget", "8",
                "--max-new-tokens", "6", "--min-new-tokens", "6", "--attn-impl", "xla",
                "--output", str(out)]
        assert main(args) == 0
        record = json.loads(out.read_text())
        outputs.append((record["completion"], record["generated_tokens"]))
    capsys.readouterr()
    assert outputs[0] == outputs[1] and outputs[0][1] == 6 and outputs[0][0].strip()


@pytest.mark.parametrize("extra, message", [
    (["--prompt", "w5"], "takes no --prompt"),
    (["--budget", "64"], "takes only --model and --dtype; got also --budget"),
    ([], "exists and is not empty"),
])
def test_cli_save_checkpoint_errors(tmp_path, capsys, extra, message):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["--save-checkpoint", str(busy)] + extra)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_cli_save_checkpoint_onto_a_file_says_so(tmp_path, capsys):
    target = tmp_path / "empty_file"
    target.write_text("")
    with pytest.raises(SystemExit) as e:
        main(["--save-checkpoint", str(target)])
    assert e.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == ""


def test_cli_without_prompt_or_save_names_both(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--budget", "8"])
    assert e.value.code == 2 and "--save-checkpoint" in capsys.readouterr().err
