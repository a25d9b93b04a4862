"""Run records on disk: the contract between ``harness eval`` (writer) and the leaderboard (reader).

The schema lives here, below every package of the project, so that the writers (the harness, the
trainers' compute ledger) and the reader (the leaderboard) share it without importing each other.

A run directory::

    RUN/
      run.json                       RunManifest: resolved config, package versions, machine, scoring
      shared/<env>/seed<k>/...       work reused across strategies (expert data, probe scores)
      shared/<env>/seed<k>/ledger.jsonl   compute spent on that shared work
      cells/<env>__<strategy>__seed<k>/
        status.json                  CellStatus: pending | running | done | failed, current phase
        ledger.jsonl                 compute ledger entries of this cell (LedgerEntry lines)
        episodes.jsonl               EpisodeResult lines of the held-out evaluation
        routing.json                 RoutingSummary: split sizes and reasons
        checkpoints/, logs/

Everything is JSON with a ``version`` field, written atomically (whole files via rename, JSONL by
single appended lines), and readable with the standard library alone: the leaderboard never imports
torch. Cells are only counted once ``status.json`` says ``done``, so an interrupted run never leaks
half a cell into a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from foundation.jsonl import append_record, read_records, write_json_atomic

__all__ = ["PHASES", "METRICS", "LedgerEntry", "RunDir", "CellStatus", "EpisodeResult", "RoutingSummary",
           "RunManifest", "append_jsonl", "read_jsonl", "write_json_atomic"]

RECORDS_VERSION = 1
LEDGER_VERSION = 1

CELL_STATES = ("pending", "running", "done", "failed")
# "pretrain": building the pretrained base (harness.base_model), shared by every strategy, charged to none
PHASES = ("pretrain", "expert", "probe", "routing", "sft", "rollout", "rl_update", "evaluation")
METRICS = ("tokens", "flops", "wall_s", "device_s", "env_steps")


def append_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append records as whole lines (one synced write each)."""
    for record in records:
        append_record(path, record)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file (none if it does not exist); a torn last line is skipped."""
    if Path(path).exists():
        yield from read_records(path, RECORDS_VERSION)


@dataclass(frozen=True)
class LedgerEntry:
    """One finished piece of work of one phase of one run (a line of a compute ledger).

    Written by :class:`prism_train.ledger.Ledger`, read by the leaderboard; see that module for the
    meaning of each metric.
    """

    phase: str
    tokens: int = 0
    flops: float = 0.0
    wall_s: float = 0.0
    device_s: float = 0.0
    env_steps: int = 0
    device: str = "cpu"
    note: str = ""
    strategy: str = ""
    run: str = ""
    time: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = LEDGER_VERSION

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown ledger phase {self.phase!r}; phases are {', '.join(PHASES)}")
        for name in METRICS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"ledger {name} must be a non-negative number, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LedgerEntry:
        """Read a record, ignoring fields a newer writer added."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


_Record = TypeVar("_Record", bound="_Versioned")


@dataclass
class _Versioned:
    """Base for records: versioned JSON round trip that ignores unknown keys from newer writers."""

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORDS_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls: type[_Record], payload: dict[str, Any]) -> _Record:
        version = payload.get("version", RECORDS_VERSION)
        if version > RECORDS_VERSION:
            raise ValueError(f"{cls.__name__} record has version {version}; this code reads up to {RECORDS_VERSION}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})


@dataclass
class EpisodeResult(_Versioned):
    """One evaluation episode of a trained (or untrained) policy on a held-out task."""

    env: str
    strategy: str
    seed: int
    split: str
    task_id: str
    reward: float
    success: bool
    steps: int
    task_type: str = ""
    reward_rule: str = ""
    """The rule the environment scored with where it has several (WebShop's ``reward_rule``), else empty."""


@dataclass
class CellStatus(_Versioned):
    cell_id: str
    env: str
    strategy: str
    seed: int
    state: str = "pending"
    phase: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""

    def __post_init__(self) -> None:
        if self.state not in CELL_STATES:
            raise ValueError(f"unknown cell state {self.state!r}; expected one of {CELL_STATES}")


@dataclass
class RoutingSummary(_Versioned):
    """How a strategy split the training data: sizes, and why (reason -> count)."""

    strategy: str
    sft_count: int
    rl_count: int
    reasons: dict[str, int] = field(default_factory=dict)
    shared_phases: list[str] = field(default_factory=list)


@dataclass
class RunManifest(_Versioned):
    """``scoring``: per environment, how the leaderboard scores it (``foundation.scoring.Scoring.to_json``),
    as its spec declared it when the run was created; the leaderboard imports no environment."""

    run_id: str
    created_at: float
    config: dict[str, Any]
    environment: dict[str, Any]
    preset: str = ""
    scoring: dict[str, Any] = field(default_factory=dict)


def cell_id(env: str, strategy: str, seed: int) -> str:
    return f"{env}__{strategy}__seed{seed}"


class RunDir:
    """Paths and typed access for one run directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "run.json"

    def manifest(self) -> RunManifest:
        if not self.manifest_path.exists():
            raise FileNotFoundError(f"{self.root} is not a run directory (no run.json)")
        return RunManifest.from_json(json.loads(self.manifest_path.read_text(encoding="utf-8")))

    def cell_dir(self, cell: str) -> Path:
        return self.root / "cells" / cell

    def shared_dir(self, env: str, seed: int) -> Path:
        return self.root / "shared" / env / f"seed{seed}"

    def cells(self) -> list[CellStatus]:
        cells_root = self.root / "cells"
        if not cells_root.is_dir():
            return []
        statuses = []
        for status_path in sorted(cells_root.glob("*/status.json")):
            statuses.append(CellStatus.from_json(json.loads(status_path.read_text(encoding="utf-8"))))
        return statuses

    def write_status(self, status: CellStatus) -> None:
        write_json_atomic(self.cell_dir(status.cell_id) / "status.json", status.to_json())

    def episodes(self, cell: str) -> list[EpisodeResult]:
        return [EpisodeResult.from_json(r) for r in read_jsonl(self.cell_dir(cell) / "episodes.jsonl")]

    def ledger(self, cell: str) -> list[LedgerEntry]:
        return [LedgerEntry.from_json(r) for r in read_jsonl(self.cell_dir(cell) / "ledger.jsonl")]

    def shared_ledger(self, env: str, seed: int) -> list[LedgerEntry]:
        return [LedgerEntry.from_json(r) for r in read_jsonl(self.shared_dir(env, seed) / "ledger.jsonl")]

    def routing(self, cell: str) -> RoutingSummary | None:
        path = self.cell_dir(cell) / "routing.json"
        if not path.exists():
            return None
        return RoutingSummary.from_json(json.loads(path.read_text(encoding="utf-8")))
