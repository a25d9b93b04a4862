"""Score against compute: the points of each Pareto plot and which of them form the frontier.

A point is on the frontier when no other measured point has at most its compute and at least its
score, with one of the two strictly better. Only measured rows are points: published numbers carry
no compute of ours and never enter a plot or a frontier. Rows without recorded FLOPs cannot sit on a
log axis; they are listed beside the plot instead of vanishing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from leaderboard.aggregate import EnvBoard, Row, RunInfo
from leaderboard.stats import Estimate


def frontier_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (compute, score) pairs: True where no other pair dominates (lower compute, higher score)."""
    def dominated(x: float, y: float) -> bool:
        return any(qx <= x and qy >= y and (qx < x or qy > y) for qx, qy in points)
    return [not dominated(x, y) for x, y in points]


@dataclass(frozen=True)
class ParetoPoint:
    row: Row
    flops: float
    score: Estimate
    on_frontier: bool


@dataclass(frozen=True)
class ParetoPlot:
    """One plot: an environment's metric (y) against total FLOPs per seed (x, log scale)."""

    env: str
    env_title: str
    metric_key: str
    metric_label: str
    points: tuple[ParetoPoint, ...]
    left_out: tuple[str, ...]

    @property
    def slug(self) -> str:
        return f"pareto_{self.env}_{self.metric_key}".replace(":", "-").replace("/", "-")

    @property
    def runs(self) -> tuple[RunInfo, ...]:
        return tuple({p.row.run.run_id: p.row.run for p in sorted(self.points, key=lambda p: p.row.run.index)}.values())

    @property
    def frontier(self) -> tuple[ParetoPoint, ...]:
        return tuple(sorted((p for p in self.points if p.on_frontier), key=lambda p: p.flops))


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def run_color(run: RunInfo) -> str:
    """One color per run, the same in every plot, in the page and in the exported files."""
    return PALETTE[run.index % len(PALETTE)]


def y_ticks(low: float, high: float) -> list[float]:
    """About five round ticks (steps of 1, 2 or 5 × 10^k) covering [low, high]."""
    raw = max(high - low, 1e-9) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [first + i * step for i in range(count + 1)]


def y_range(plot: ParetoPlot) -> tuple[float, float]:
    """Round limits around the points and their intervals, kept within 0–100 (every metric is a percentage)."""
    low = min(p.score.low for p in plot.points)
    high = max(p.score.high for p in plot.points)
    pad = max((high - low) * 0.08, 2.0)
    ticks = y_ticks(max(0.0, low - pad), min(100.0, high + pad))
    return ticks[0], ticks[-1]


def pareto_plot(board: EnvBoard, metric_key: str) -> ParetoPlot:
    plotted: list[tuple[Row, Estimate]] = []
    left_out = []
    for row in board.rows:
        score = row.values.get(metric_key)
        if score is None:
            left_out.append(f"{row.run.label} / {row.strategy}: no {metric_key} value")
        elif row.compute.flops <= 0:
            left_out.append(f"{row.run.label} / {row.strategy}: no FLOPs recorded in its ledgers")
        else:
            plotted.append((row, score))
    mask = frontier_mask([(row.compute.flops, score.mean) for row, score in plotted])
    points = tuple(ParetoPoint(row, row.compute.flops, score, on)
                   for (row, score), on in zip(plotted, mask, strict=True))
    metric = next(m for m in board.columns if m.key == metric_key)
    return ParetoPlot(board.env, board.scoring.title, metric_key, metric.label, points, tuple(left_out))


def pareto_plots(board: EnvBoard) -> list[ParetoPlot]:
    return [pareto_plot(board, key) for key in board.scoring.plotted]
