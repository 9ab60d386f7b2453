#!/usr/bin/env bash
# The training stack at its lower bounds: a fresh venv with every [train] requirement pinned to the
# oldest version pyproject.toml admits (its ">=" bound), then the run/eval tests that exercise it.
# When a bound is raised or lowered, run this once (CI can too): the bound is what it claims.
#   bash scripts/check_lower_bounds.sh [pytest args]    # default: a narrow selection of run tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${LOWER_BOUNDS_VENV:-$(mktemp -d)/venv}"
pins="$("$PY" - <<'PY'
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
train = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]
for req in train:
    name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
    low = re.search(r">=\s*([0-9][^,;\s]*)", req)
    print(f"{name}=={low.group(1)}" if low else req)
PY
)"
"$PY" -m venv "$VENV"
# torch first: the lower bound's CPU build where the index has one (a plain "torch" may pull CUDA)
"$VENV/bin/python" -m pip install -q $(echo "$pins" | grep '^torch==')
"$VENV/bin/python" -m pip install -q $pins
"$VENV/bin/python" -m pip install -q -e ".[test]"   # sftkit itself; the stack is already at its bounds
"$VENV/bin/python" -m pip check
echo "== lower bounds:" $pins
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$#" -eq 0 ]; then
  set -- tests/test_run.py tests/test_chunked_loss.py tests/test_strategies.py -q -p no:cacheprovider -x
fi
"$VENV/bin/python" -m pytest "$@"
