#!/usr/bin/env bash
# Set up sftkit with its test dependencies, install each example plugin into a fresh environment as
# its README says (scripts/check_plugins.sh), run ruff and mypy (configured in pyproject.toml), and
# run the whole test suite (including the example plugins' own tests and a few real-model tests on
# the offline SmolLM2 and MiniLM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
VENV="${VENV:-.venv}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# each example plugin installed as its README says, in a fresh environment (skip: SFTKIT_SKIP_PLUGIN_ENVS=1)
if [ -z "${SFTKIT_SKIP_PLUGIN_ENVS:-}" ]; then
  PYTHON="$VENV/bin/python" bash scripts/check_plugins.sh
fi
# lint and import order (ruff), and the types of the contract plugins build on (mypy): seconds, before the tests
"$VENV/bin/python" -m ruff check sftkit tests
"$VENV/bin/python" -m mypy
"$VENV/bin/python" -m pytest tests plugins -q -p no:cacheprovider --durations=15 "$@"
