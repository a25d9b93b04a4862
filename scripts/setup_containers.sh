#!/usr/bin/env bash
# What the marked suite `containers` needs beyond scripts/setup.sh: a container runtime that works on
# these machines (podman + runc, debootstrap for the base root, podman-compose); it also runs
# scripts/setup_ray.sh, so that Ray is in .venv as before. Safe to re-run: skips what is already
# there. The images are built (and cached) by containers/build.py when the suite first needs
# them, or here with --images: the default ones (webshop, alfworld) or the targets named after it.
#   bash scripts/setup_containers.sh [--images [webshop alfworld vllm]]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in podman runc debootstrap podman-compose; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "[setup_containers] missing: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "[setup_containers] installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

[ -x .venv/bin/python ] || bash scripts/setup.sh
bash scripts/setup_ray.sh

if [ "${1:-}" = "--images" ]; then
  shift
  .venv/bin/python containers/build.py "$@"
fi
echo "[setup_containers] ready: $(podman --version), runc $(runc --version | head -1 | awk '{print $3}'), \
ray $(.venv/bin/python -c 'import ray; print(ray.__version__)')"
