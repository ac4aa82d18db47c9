#!/usr/bin/env bash
# Set up (with the PyTorch CPU reference) and run the whole test suite. Extra args go to pytest,
# e.g. scripts/test.sh -m "not slow" for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
export JAX_PLATFORMS=cpu
exec .venv/bin/python -m pytest -q "$@"
