"""The interactive Pareto plot of the HTML page: plain SVG written here, made hoverable by report.js.

Hand-written SVG keeps the page one small self-contained file that renders without JavaScript; each
point carries its hover text in ``data-tip``. The PNG/SVG files beside the page come from matplotlib
(``leaderboard.plots``) and draw the same ``ParetoPlot``.
"""

from __future__ import annotations

import math
from html import escape

from leaderboard.pareto import ParetoPlot, ParetoPoint, run_color, y_range, y_ticks
from leaderboard.tables import estimate_detail, fmt_estimate, fmt_flops, fmt_ratio, fmt_sig

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 36, 56


def x_domain(flops: list[float]) -> tuple[int, int]:
    """Whole decades around the data, at least one decade wide."""
    low = math.floor(math.log10(min(flops)) - 0.1)
    high = math.ceil(math.log10(max(flops)) + 0.1)
    return low, max(high, low + 1)


def tooltip(point: ParetoPoint, metric_label: str) -> str:
    row = point.row
    lines = [
        f"{row.strategy} · {row.run.label}",
        f"seeds: {len(row.seeds)} ({', '.join(map(str, row.seeds))})",
        f"{metric_label}: {fmt_estimate(point.score)}",
        estimate_detail(point.score),
        f"FLOPs per seed: {fmt_flops(point.flops)}"
        + (f" ({fmt_ratio(row.compute_ratio)} rl-only)" if row.compute_ratio is not None else ""),
        f"device-hours: {fmt_sig(row.compute.device_hours)} · wall hours: {fmt_sig(row.compute.wall_hours)}",
    ]
    if point.on_frontier:
        lines.append("on the Pareto frontier")
    return "\n".join(lines)


def _attr(text: str) -> str:
    return escape(text, quote=True).replace("\n", "&#10;")


def _legend(plot: ParetoPlot) -> str:
    """Run colors, in a row right-aligned above the frame (only drawn when several runs share the plot)."""
    items, x = [], WIDTH - RIGHT
    for run in reversed(plot.runs):
        x -= 7 * len(run.label) + 26
        items.append(f'<g class="legend"><circle cx="{x + 6}" cy="{TOP - 12}" r="5" fill="{run_color(run)}"/>'
                     f'<text x="{x + 15}" y="{TOP - 8}">{escape(run.label)}</text></g>')
    return "".join(items)


def render(plot: ParetoPlot) -> str:
    """The plot as an inline ``<svg>`` element; an empty plot says why it is empty."""
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    title = f"{plot.env_title}: {plot.metric_label} against compute"
    parts = [f'<svg class="pareto" id="{plot.slug}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="{_attr(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<text class="title" x="{LEFT}" y="22">{escape(title)}</text>']
    if not plot.points:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                     "no finished cell with recorded compute</text></svg>")
        return "".join(parts)
    x_low, x_high = x_domain([p.flops for p in plot.points])
    y_low, y_high = y_range(plot)

    def sx(flops: float) -> float:
        return LEFT + (math.log10(flops) - x_low) / (x_high - x_low) * inner_w

    def sy(value: float) -> float:
        clamped = min(max(value, y_low), y_high)
        return TOP + (1 - (clamped - y_low) / (y_high - y_low)) * inner_h

    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}"/>')
    decade_step = max(1, math.ceil((x_high - x_low) / 10))
    for decade in range(x_low, x_high + 1, decade_step):
        x = sx(10.0 ** decade)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + inner_h}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{TOP + inner_h + 18}" text-anchor="middle">1e{decade}</text>')
    for value in y_ticks(y_low, y_high):
        y = sy(value)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + inner_w}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<text class="axis" x="{LEFT + inner_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
                 "total FLOPs per seed (log scale)</text>"
                 f'<text class="axis" transform="translate(16 {TOP + inner_h / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(plot.metric_label)}</text>')
    frontier = " ".join(f"{sx(p.flops):.1f},{sy(p.score.mean):.1f}" for p in plot.frontier)
    parts.append(f'<polyline class="frontier" points="{frontier}"/>')
    if len(plot.runs) > 1:
        parts.append(_legend(plot))
    for point in sorted(plot.points, key=lambda p: p.on_frontier):
        x, y = sx(point.flops), sy(point.score.mean)
        color = run_color(point.row.run)
        css = "point frontier-point" if point.on_frontier else "point"
        parts.append(f'<g class="{css}" tabindex="0" data-strategy="{_attr(point.row.strategy)}" '
                     f'data-tip="{_attr(tooltip(point, plot.metric_label))}">')
        if point.score.half_width is not None:
            parts.append(f'<line class="interval" x1="{x:.1f}" y1="{sy(point.score.low):.1f}" x2="{x:.1f}" '
                         f'y2="{sy(point.score.high):.1f}" stroke="{color}"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if point.on_frontier else 5}" fill="{color}"/>')
        if point.on_frontier:
            parts.append(f'<text class="label" x="{x + 9:.1f}" y="{y - 8:.1f}">{escape(point.row.strategy)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
