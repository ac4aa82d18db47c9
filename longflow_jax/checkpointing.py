"""Converted models as Orbax checkpoints: save once, load without re-reading GGUF or safetensors.

Loading a GGUF file dequantizes every tensor and undoes llama.cpp's Q/K
permutation; loading a HF folder transposes and stacks every layer.  A
checkpoint written here holds the result, in this package's parameter layout
(``Decoder.params()``), so later loads only read arrays.

Layout of a checkpoint directory (the repository's ``checkpoints/`` folder is
meant for them)::

    longflow_model.json   format marker: ModelConfig fields, stop ids, dtype, source
    params/               the parameter pytree (orbax.checkpoint.StandardCheckpointer)
    tokenizer.json ...    the tokenizer (transformers ``save_pretrained``, with its chat template)

``load_model`` recognises such a directory by ``longflow_model.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

MARKER = "longflow_model.json"
FORMAT = "longflow-jax/orbax"
FORMAT_VERSION = 1


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory written by :func:`save_checkpoint`."""
    return (Path(path) / MARKER).is_file()


def check_target(directory: str | os.PathLike) -> Path:
    """``directory`` as an absolute path if a checkpoint may be written there (new or empty).

    Raises:
      FileExistsError: it exists and is not an empty folder (nothing is overwritten).
    """
    directory = Path(directory).expanduser().resolve()  # orbax wants absolute paths
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file, not a folder; choose a new or empty folder "
                              "for the checkpoint (nothing is overwritten)")
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"checkpoint directory {directory} exists and is not empty; "
                              "choose a new one (nothing is overwritten)")
    return directory


def save_checkpoint(model, directory: str | os.PathLike) -> Path:
    """Writes a loaded model (config, parameters, tokenizer) to ``directory``.

    Args:
      model: a :class:`longflow_jax.loading.LoadedModel` (from ``load_model``).
      directory: where to write; created if missing, must be empty if it exists.

    Returns:
      The absolute path of the checkpoint directory.

    Raises:
      FileExistsError: ``directory`` exists and is not empty (nothing is overwritten).
    """
    import orbax.checkpoint as ocp

    directory = check_target(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Written to a hidden sibling and renamed at the end: a failed or interrupted
    # save leaves no half-written checkpoint behind, and can simply be retried.
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(staging / "params", model.params)
            checkpointer.wait_until_finished()
        model.tokenizer.save_pretrained(str(staging))
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "config": dataclasses.asdict(model.cfg),
            "stop_ids": list(model.stop_ids), "dtype": stored_dtype(model.params),
            "source": model.source,
        }
        (staging / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(staging, directory)  # replaces an empty directory, atomically
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def stored_dtype(params) -> str:
    """Name of the parameters' dtype (``"float32"`` or ``"bfloat16"``)."""
    import jax

    return str(jax.tree.leaves(params)[0].dtype)


def read_checkpoint(directory: str | os.PathLike, dtype: str | None = None):
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Args:
      directory: the checkpoint folder.
      dtype: ``"float32"`` / ``"bfloat16"`` to cast to while reading, or None
        for the saved dtype.

    Returns:
      ``(cfg, params, tokenizer, stop_ids)``.

    Raises:
      ModelLoadError: the marker is unreadable or of another format/version, the
        parameters are missing or do not match the config, or the tokenizer is bad.
      UnsupportedModelError: the stored config names an unsupported architecture.
    """
    import jax
    import orbax.checkpoint as ocp

    from longflow_jax.config import ModelConfig
    from longflow_jax.loading import ModelLoadError, _hf_tokenizer
    from longflow_jax.model import param_shapes

    directory = Path(directory).expanduser().resolve()
    try:
        meta = json.loads((directory / MARKER).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{directory / MARKER} is unreadable: {e}") from e
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ModelLoadError(f"{directory} holds format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}; this version reads {FORMAT!r} "
                             f"version {FORMAT_VERSION}")
    try:
        cfg = ModelConfig(**meta["config"])
    except (KeyError, TypeError) as e:
        raise ModelLoadError(f"{directory / MARKER} has an invalid config: {e!r}") from e
    tokenizer = _hf_tokenizer(directory)  # before the weights: a bad tokenizer fails fast
    params_dir = directory / "params"
    if not params_dir.is_dir():
        raise ModelLoadError(f"{directory} is a converted checkpoint without its params/ folder "
                             f"(the weights); convert the model again with --save-checkpoint")
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            stored = checkpointer.metadata(params_dir).item_metadata.tree
        except Exception as e:  # orbax raises many types for a missing / corrupt directory
            raise ModelLoadError(f"no readable parameters in {params_dir}: {e}") from e
        _check_shapes(_flatten(stored), _flatten(param_shapes(cfg)), params_dir, ModelLoadError)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), dtype or m.dtype), stored)
        try:
            params = checkpointer.restore(params_dir, target)
        except Exception as e:
            raise ModelLoadError(f"could not restore the parameters from {params_dir}: {e}") from e
    return cfg, params, tokenizer, tuple(int(i) for i in meta.get("stop_ids", ()))


def _flatten(tree: dict, prefix: str = "") -> dict:
    """``{"layers": {"wq": x}}`` -> ``{"layers/wq": x}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out


def _check_shapes(stored: dict, expected: dict, where: Path, error) -> None:
    """Every parameter the config needs is stored, with its shape (before reading any array)."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise error(f"{where} does not match its config: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if tuple(stored[name].shape) != tuple(shape):
            raise error(f"parameter {name} in {where} has shape {tuple(stored[name].shape)}, "
                        f"its config needs {tuple(shape)}")
