"""Checkpoints that resume exactly: weights (or the LoRA adapter), optimizer, scheduler, every RNG,
and where in the data the run was.

Layout of ``<output_dir>/checkpoints/step-000040/``::

    model/               a model directory (full fine-tuning) or a PEFT adapter directory (LoRA),
                         with the tokenizer: loadable by every generation backend as it is
    trainer_state.pt     optimizer, scheduler and RNG states (tensors and plain containers only;
                         read back with ``torch.load(weights_only=True)``)
    trainer_state.json   step, data position, metrics and the resolved config, for people

A checkpoint is written into a temporary directory and renamed into place, then ``LATEST`` is
replaced atomically, so a crash mid-save leaves the previous checkpoint current.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from foundation.jsonl import atomic_write_text
from prism_train.device import rng_state

log = logging.getLogger(__name__)

LATEST = "LATEST"
CHECKPOINT_VERSION = 1


def checkpoints_dir(output_dir: str | os.PathLike[str]) -> Path:
    return Path(output_dir) / "checkpoints"


def save_model_dir(model: Any, tokenizer: Any, directory: Path) -> None:
    """``save_pretrained`` of the model (a PEFT model saves its adapter only) and the tokenizer."""
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def save_checkpoint(output_dir: str | os.PathLike[str], step: int, model: Any, tokenizer: Any,
                    optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write checkpoint ``step`` (``state``: JSON-able trainer state incl. the data position)."""
    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        save_model_dir(model, tokenizer, tmp / "model")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    "version": CHECKPOINT_VERSION}, tmp / "trainer_state.pt")
        write_json(tmp / "trainer_state.json", {**state, "step": step, "version": CHECKPOINT_VERSION})
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    _prune(root, keep)
    log.info("saved checkpoint %s", final)
    return final


def _prune(root: Path, keep: int) -> None:
    if keep < 1:
        return
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``LATEST`` names, or ``None`` when the run has none yet."""
    root = checkpoints_dir(output_dir)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    if not (path / "trainer_state.pt").is_file():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is incomplete or missing")
    return path


def load_checkpoint_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensor state: optimizer/scheduler/rng, JSON state) of a checkpoint."""
    tensors = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
    meta = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    for payload in (tensors, meta):
        if payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint version {payload.get('version')}; this code reads "
                             f"{CHECKPOINT_VERSION}")
    return tensors, meta
