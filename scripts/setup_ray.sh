#!/usr/bin/env bash
# What the marked suite `ray` needs beyond scripts/setup.sh: the project's `ray` extra (pyproject.toml,
# [project.optional-dependencies]) in .venv. ~30 s and 285 MB the first time; a no-op once the pinned
# requirement is satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
# The requirement strings come from pyproject.toml, so the pin lives in one place.
mapfile -t wanted < <(.venv/bin/python -c '
import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["ray"], sep="\n")')
if ! .venv/bin/python - "${wanted[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    requirement = Requirement(spec)
    assert requirement.specifier.contains(version(requirement.name), prereleases=True), spec
EOF
then
  echo "[setup_ray] installing ${wanted[*]} into .venv"
  .venv/bin/python -m pip install -q "${wanted[@]}"
fi
echo "[setup_ray] ready: ray $(.venv/bin/python -c 'import ray; print(ray.__version__)')"
