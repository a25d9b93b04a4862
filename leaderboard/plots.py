"""The Pareto plots as PNG and SVG files beside the page (matplotlib, imported only when writing them)."""

from __future__ import annotations

import logging
from pathlib import Path

from leaderboard.pareto import ParetoPlot, run_color, y_range

log = logging.getLogger(__name__)


def export(plot: ParetoPlot, out_dir: Path) -> list[Path]:
    """Write ``<slug>.png`` and ``<slug>.svg``; the SVG is byte-stable (no date, fixed hash salt)."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 4.4), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"{plot.env_title}: {plot.metric_label} against compute", loc="left")
    ax.set_xlabel("total FLOPs per seed (log scale)")
    ax.set_ylabel(plot.metric_label)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.8)
    if plot.points:
        ax.set_xscale("log")
        ax.set_ylim(*y_range(plot))
        frontier = plot.frontier
        ax.plot([p.flops for p in frontier], [p.score.mean for p in frontier], color="#444444", linestyle="--",
                linewidth=1.2, label="Pareto frontier", zorder=1)
        labelled: set[str] = set()
        for point in sorted(plot.points, key=lambda p: p.row.run.index):
            run, color = point.row.run, run_color(point.row.run)
            error = point.score.half_width
            ax.errorbar(point.flops, point.score.mean, yerr=None if error is None else [[error], [error]],
                        fmt="o", color=color, markersize=8 if point.on_frontier else 5,
                        markeredgecolor="black" if point.on_frontier else color, capsize=3,
                        label=run.label if run.run_id not in labelled else None, zorder=2)
            labelled.add(run.run_id)
            if point.on_frontier:
                ax.annotate(point.row.strategy, (point.flops, point.score.mean), textcoords="offset points",
                            xytext=(6, 6), fontsize=8)
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished cell with recorded compute", ha="center", va="center", transform=ax.transAxes)
    paths = [out_dir / f"{plot.slug}.png", out_dir / f"{plot.slug}.svg"]
    with matplotlib.rc_context({"svg.hashsalt": "leaderboard", "svg.fonttype": "none"}):
        fig.savefig(paths[0], format="png")
        fig.savefig(paths[1], format="svg", metadata={"Date": None})
    log.debug("wrote %s", ", ".join(map(str, paths)))
    return paths
