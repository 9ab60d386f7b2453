#!/usr/bin/env bash
# The light core vs the full install, each in a fresh virtual environment (pip's cache / local
# indexes as configured): install time, site-packages size (total, and added to the bare venv's
# pip/setuptools), whether torch came along, and whether `sftkit validate recipes` passes on the
# light core. Prints one JSON document (stdout); scratch goes to a temp dir. Quote it with the load.
#   bash scripts/measure_light_install.sh            # light core and full install
#   bash scripts/measure_light_install.sh --light    # light core only (seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
ROOT="$(pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

site_kb() { du -sk "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1; }

# measure NAME PIP-ARGS...: one fresh venv, one pip install, then the checks; prints a JSON object
measure() {
  local name="$1"; shift
  local venv="$TMP/$name"
  "$PY" -m venv "$venv"
  local bare; bare="$(site_kb "$venv")"
  local start end
  start="$(date +%s.%N)"
  "$venv/bin/python" -m pip install -q "$@" >"$TMP/$name.log" 2>&1
  end="$(date +%s.%N)"
  local total; total="$(site_kb "$venv")"
  local torch=false
  "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' && torch=true
  local rc=null
  if [ "$name" = light ]; then  # the full install validates too once the recipes' model packages are in (setup.sh)
    rc=0
    (cd "$ROOT" && env -u PYTHONPATH "$venv/bin/sftkit" validate recipes >"$TMP/$name.validate" 2>&1) || rc=$?
  fi
  local packages; packages="$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)"
  printf '{"install_s": %.1f, "site_packages_mb": %.1f, "added_mb": %.1f, "packages": %d, "torch_installed": %s, "validate_recipes_exit": %s}' \
    "$(echo "$end - $start" | bc)" "$(echo "$total / 1024" | bc -l)" "$(echo "($total - $bare) / 1024" | bc -l)" \
    "$packages" "$torch" "$rc"
}

light="$(measure light "$ROOT")"
full=null
if [ "${1:-}" != "--light" ]; then
  # as scripts/setup.sh: torch pinned first (a plain "torch" would pull a CUDA build), then everything
  full="$(measure full "torch==2.13.0" "$ROOT[all]")"
fi
printf '{"light": %s, "full": %s, "python": "%s", "cpus": %s, "loadavg": "%s", "date": "%s"}\n' \
  "$light" "$full" "$("$PY" -c 'import platform; print(platform.python_version())')" "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
