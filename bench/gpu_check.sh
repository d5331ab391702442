#!/usr/bin/env bash
# The GPU check: one markdown report from the source tree, on a CUDA machine with torch, transformers, peft and
# accelerate already installed (nothing is downloaded; the models are random-weight backbones built from configs).
#
#   bash bench/gpu_check.sh [REPORT] [--tiny | --dry | --deadline SECONDS]
#   bash bench/gpu_check.sh REPORT --recipes [--dry]   # the real pipelines instead: bench/gpu_recipes.py
#
# REPORT defaults to $OUT/gpu_report.md ($OUT unset: ./gpu_report.md). Under 8 minutes on one H200: the Python
# side stops starting sections at its 450 s deadline and this script stops it at 470 s. `--dry` runs every
# section on CPU with tiny sizes in seconds (tests/bench/test_gpu_check.py). See bench/gpu_check.py.
set -u
cd "$(dirname "$0")/.."
report="${1:-${OUT:-.}/gpu_report.md}"
[ $# -gt 0 ] && shift
export PYTHONPATH="src:tests:.${PYTHONPATH:+:$PYTHONPATH}"
export LLMREC_HOME="${LLMREC_HOME:-$(mktemp -d)}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
module=bench.gpu_check
if [ "${1:-}" = "--recipes" ]; then module=bench.gpu_recipes; shift; fi
exec timeout 470 "${PYTHON:-python3}" -m "$module" --out "$report" "$@"
