"""The comparison matrix: environments × strategies × seeds, run cell by cell, resumable.

The runner owns the bookkeeping that must be right under interruption: a cell counts only once its
``status.json`` says ``done`` (written atomically, last); a cell found ``running`` or ``failed`` on
start-up is wiped and restarted, so nothing half-written is ever read or counted twice; shared work
(expert data, probe scores) is kept by the pipeline in files that are themselves resumable. What a
cell *does* is the pipeline's business (see ``harness.pipeline``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from foundation.records import CellStatus, LedgerEntry, RunDir, append_jsonl, cell_id
from harness.config import EnvRunConfig, EvalConfig

log = logging.getLogger(__name__)


@dataclass
class CellProgress:
    """What the live display shows for one cell; the pipeline updates it as it goes."""

    status: CellStatus
    done: int = 0
    total: int = 0
    episodes: int = 0
    phase_started: float = field(default_factory=time.monotonic)
    started: float | None = None
    elapsed_s: float = 0.0

    def set_phase(self, phase: str, total: int = 0) -> None:
        self.status.phase = phase
        self.done, self.total = 0, total
        self.phase_started = time.monotonic()

    def advance(self, n: int = 1, episodes: int = 0) -> None:
        self.done += n
        self.episodes += episodes


class CellContext:
    """Handed to the pipeline for one cell: where to write, how to report progress and compute."""

    def __init__(self, run: RunDir, status: CellStatus, progress: CellProgress) -> None:
        self.run = run
        self.status = status
        self.progress = progress
        self.dir = run.cell_dir(status.cell_id)

    def phase(self, name: str, total: int = 0) -> None:
        self.progress.set_phase(name, total)
        self.run.write_status(self.status)

    def charge(self, entry: LedgerEntry) -> None:
        append_jsonl(self.dir / "ledger.jsonl", [entry.to_json()])


class Pipeline(Protocol):
    """The work of a comparison; ``harness.pipeline.TrainingPipeline`` is the real one."""

    def run_cell(self, env: EnvRunConfig, strategy: str, seed: int, ctx: CellContext) -> None: ...


class EvalRunner:
    """Runs every unfinished cell of the matrix in a fixed order, keeping finished ones."""

    def __init__(self, config: EvalConfig, run: RunDir, pipeline: Pipeline,
                 on_update: Callable[[list[CellProgress]], None] = lambda cells: None) -> None:
        self.config = config
        self.run_dir = run
        self.pipeline = pipeline
        self.on_update = on_update
        self.cells = [CellProgress(status) for status in self._plan()]

    def _plan(self) -> list[CellStatus]:
        existing = {status.cell_id: status for status in self.run_dir.cells()}
        plan = []
        for env, strategy, seed in self.config.cells():
            cid = cell_id(env.name, strategy, seed)
            status = existing.get(cid)
            if status is None or status.state != "done":
                status = CellStatus(cid, env.name, strategy, seed)
            plan.append(status)
        return plan

    def run(self) -> list[CellStatus]:
        envs = {env.name: env for env in self.config.envs}
        for progress in self.cells:
            status = progress.status
            if status.state == "done":
                continue
            self._restart(status)
            progress.started = time.monotonic()
            ctx = CellContext(self.run_dir, status, progress)
            self.on_update(self.cells)
            try:
                self.pipeline.run_cell(envs[status.env], status.strategy, status.seed, ctx)
            except KeyboardInterrupt:
                status.state, status.error = "failed", "interrupted"
                self.run_dir.write_status(status)
                raise
            except Exception as exc:
                log.exception("cell %s failed in phase %s", status.cell_id, status.phase)
                status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
                status.finished_at = time.time()
                self.run_dir.write_status(status)
            else:
                status.state, status.phase, status.finished_at = "done", "done", time.time()
                self.run_dir.write_status(status)
            finally:
                progress.elapsed_s = time.monotonic() - progress.started
                self.on_update(self.cells)
        return [progress.status for progress in self.cells]

    def _restart(self, status: CellStatus) -> None:
        """Wipe whatever an interrupted attempt left and mark the cell running from scratch."""
        cell_dir = self.run_dir.cell_dir(status.cell_id)
        if cell_dir.exists():
            log.info("restarting cell %s cleanly (previous attempt did not finish)", status.cell_id)
            shutil.rmtree(cell_dir)
        status.state, status.phase, status.error = "running", "starting", ""
        status.started_at, status.finished_at = time.time(), None
        self.run_dir.write_status(status)
