"""Reading run directories into memory, with clear errors for anything that is not a readable run.

Only cells whose ``status.json`` says ``done`` are read in full; every other cell is kept as a
``NotCounted`` entry with its reason, so the report can list it instead of silently dropping it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from foundation.records import CellStatus, EpisodeResult, LedgerEntry, RoutingSummary, RunDir, RunManifest

log = logging.getLogger(__name__)


class RunLoadError(ValueError):
    """A path that cannot be read as a run directory; the message names the path and the problem."""


@dataclass(frozen=True)
class CellData:
    """A finished cell: its held-out episodes, its own compute ledger and its routing summary."""

    status: CellStatus
    episodes: tuple[EpisodeResult, ...]
    ledger: tuple[LedgerEntry, ...]
    routing: RoutingSummary | None


@dataclass(frozen=True)
class NotCounted:
    """A cell left out of every number, and why."""

    status: CellStatus
    reason: str


@dataclass(frozen=True)
class LoadedRun:
    root: Path
    manifest: RunManifest
    cells: tuple[CellData, ...]
    not_counted: tuple[NotCounted, ...]
    shared_ledgers: dict[tuple[str, int], tuple[LedgerEntry, ...]]

    @property
    def run_id(self) -> str:
        return self.manifest.run_id


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the record layer's errors (bad JSON, newer versions, missing fields) into one error naming the file."""
    try:
        yield
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise RunLoadError(f"{path}: {exc}") from exc


def _read_cell(run: RunDir, status: CellStatus) -> CellData | NotCounted:
    cell_dir = run.cell_dir(status.cell_id)
    if status.state != "done":
        reason = f"{status.state}" + (f" in phase {status.phase}" if status.phase else "")
        return NotCounted(status, reason + (f": {status.error}" if status.error else ""))
    with _reading(cell_dir / "episodes.jsonl"):
        episodes = tuple(run.episodes(status.cell_id))
    if not episodes:
        return NotCounted(status, "done, but no evaluation episodes were recorded")
    strays = sorted({(e.env, e.strategy, e.seed) for e in episodes} - {(status.env, status.strategy, status.seed)})
    if strays:
        raise RunLoadError(f"{cell_dir / 'episodes.jsonl'}: episodes of {strays} in the cell of "
                           f"{(status.env, status.strategy, status.seed)}")
    with _reading(cell_dir / "ledger.jsonl"):
        ledger = tuple(run.ledger(status.cell_id))
    with _reading(cell_dir / "routing.json"):
        routing = run.routing(status.cell_id)
    return CellData(status, episodes, ledger, routing)


def load_run(path: str | Path) -> LoadedRun:
    """Read one run directory; raises ``RunLoadError`` when it is missing, malformed, empty or too new."""
    root = Path(path)
    if not root.exists():
        raise RunLoadError(f"{root} does not exist")
    if not root.is_dir():
        raise RunLoadError(f"{root} is not a directory (expected a run directory written by `harness eval`)")
    run = RunDir(root)
    if not run.manifest_path.exists():
        raise RunLoadError(f"{root} is not a run directory: it has no run.json "
                           "(expected one written by `harness eval`)")
    with _reading(run.manifest_path):
        manifest = run.manifest()
    with _reading(root / "cells"):
        statuses = run.cells()
    if not statuses:
        raise RunLoadError(f"{root} is an empty run: it has no cells yet (has `harness eval` started on it?)")
    cells: list[CellData] = []
    not_counted: list[NotCounted] = []
    for status in statuses:
        read = _read_cell(run, status)
        (cells if isinstance(read, CellData) else not_counted).append(read)
    shared: dict[tuple[str, int], tuple[LedgerEntry, ...]] = {}
    for key in sorted({(c.status.env, c.status.seed) for c in cells}):
        with _reading(run.shared_dir(*key) / "ledger.jsonl"):
            shared[key] = tuple(run.shared_ledger(*key))
    log.debug("read run %s: %d cells counted, %d not", manifest.run_id, len(cells), len(not_counted))
    return LoadedRun(root, manifest, tuple(cells), tuple(not_counted), shared)


def load_runs(paths: list[str | Path]) -> list[LoadedRun]:
    """Read several runs; the same run given twice is refused, since its cells would count twice."""
    if not paths:
        raise RunLoadError("no run directory given")
    runs = [load_run(path) for path in paths]
    seen: dict[str, Path] = {}
    for run in runs:
        if run.run_id in seen:
            raise RunLoadError(f"{run.root} and {seen[run.run_id]} are the same run (run_id {run.run_id}); "
                               "give each run once")
        seen[run.run_id] = run.root
    return runs
