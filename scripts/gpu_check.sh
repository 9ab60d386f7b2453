#!/usr/bin/env bash
# One prepared GPU check: the quickstart on CUDA in bf16, bench_instruction sftkit vs TRL, QLoRA, a
# one-GPU DDP/FSDP launcher run with evaluation on the GPU, sftkit plan vs the measured peaks, and the
# reasoning strategy's generation; under 8 minutes on one GPU, one JSON (benchmarks/results/gpu_check.json).
#   bash scripts/gpu_check.sh            # on a GPU machine
#   bash scripts/gpu_check.sh --dry      # anywhere: every step's preconditions, nothing heavy (CI runs it)
# Options after --dry: --output PATH, --only step,step (see scripts/gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false SFTKIT_NO_PROGRESS=1
exec "$PY" scripts/gpu_check.py "$@"
