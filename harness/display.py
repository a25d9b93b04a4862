"""The live view of ``harness eval``: one row per cell with status, phase, speed and time left."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text

from harness.runner import CellProgress

_STYLE = {"pending": "dim", "running": "bold yellow", "done": "green", "failed": "bold red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _running_elapsed(cell: CellProgress) -> float:
    if cell.status.state == "running" and cell.started is not None:
        return time.monotonic() - cell.started
    return cell.elapsed_s


def estimate_remaining(cells: list[CellProgress]) -> float | None:
    """Time left: the mean duration of cells finished in this session times the cells still to run."""
    finished = [c.elapsed_s for c in cells if c.status.state in ("done", "failed") and c.started is not None]
    left = [c for c in cells if c.status.state in ("pending", "running")]
    if not finished:
        return None
    mean = sum(finished) / len(finished)
    running = sum(max(0.0, mean - _running_elapsed(c)) for c in left if c.status.state == "running")
    return running + mean * sum(1 for c in left if c.status.state == "pending")


def render(cells: list[CellProgress], started: float) -> Group:
    table = Table(expand=False, header_style="bold")
    for column in ("env", "strategy", "seed", "status", "phase", "progress", "episodes/s", "elapsed"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=48 if column == "phase" else None)
    for cell in cells:
        status = cell.status
        elapsed = _running_elapsed(cell)
        phase_elapsed = time.monotonic() - cell.phase_started
        rate = f"{cell.episodes / elapsed:.2f}" if cell.episodes and elapsed > 0 else "-"
        progress = f"{cell.done}/{cell.total}" if cell.total and status.state == "running" else ""
        phase = status.phase if status.state == "running" else (status.error[:40] if status.state == "failed" else "")
        if status.state == "running" and cell.total and cell.done:
            eta = phase_elapsed / cell.done * (cell.total - cell.done)
            progress += f" (~{_duration(eta)})"
        table.add_row(status.env, status.strategy, str(status.seed), Text(status.state, style=_STYLE[status.state]),
                      phase, progress, rate, _duration(elapsed) if cell.started is not None else "")
    done = sum(c.status.state == "done" for c in cells)
    remaining = estimate_remaining(cells)
    footer = Text(f"\n{done}/{len(cells)} cells done · elapsed {_duration(time.monotonic() - started)} · "
                  f"estimated left {_duration(remaining)}")
    return Group(table, footer)
