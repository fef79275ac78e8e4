#!/usr/bin/env bash
# Full-size random-initialised backbones at the paper's batch sizes, every method, on ONE CUDA GPU.
# No network needed (random weights, synthetic batches). Budget: under 8 minutes on an H100-class GPU.
#
#   bash benchmarks/gpu.sh                 # fp32, all four backbones -> benchmarks/results/gpu/
#   bash benchmarks/gpu.sh --bf16          # forward under bfloat16 autocast (weights and AdamW fp32)
#   bash benchmarks/gpu.sh --only bert,vit # a subset
#   bash benchmarks/gpu.sh --device cpu --tiny   # the same code on miniature configs (smoke test, CPU)
#
# Extra arguments are passed to `python -m unipt.bench gpu` (see --help). Each backbone gets a table in
# benchmarks/results/gpu/gpu.md (+ gpu.json, gpu-<backbone>.png); a method that runs out of memory is
# recorded as OOM and the run continues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Keep the whole script inside 8 minutes even if something hangs.
exec timeout 480 "$PY" -m unipt.bench gpu --out benchmarks/results/gpu "$@"
