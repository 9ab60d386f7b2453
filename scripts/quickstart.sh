#!/usr/bin/env bash
# Set up sftkit and run the quickstart: fine-tune SmolLM2-135M-Instruct (offline GGUF) so it learns
# a new, measured behaviour, in about a minute on 2 idle CPU cores (plus set-up). Prints the behaviour before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${VENV:-.venv}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/sftkit" validate recipes/quickstart.toml
"$VENV/bin/sftkit" run recipes/quickstart.toml --overwrite "$@"
