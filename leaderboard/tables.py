"""The report as a document of tables, independent of how it is rendered (Markdown or HTML).

Numbers are formatted here once: metrics as ``mean ± half-width`` (or ``mean (n=1)``), FLOPs as
``1.2e15``, hours to 3 significant digits. Each numeric column says whether higher or lower is
better, and its best measured value is marked; published rows are never marked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from foundation.records import RoutingSummary
from leaderboard.aggregate import BASELINE, RL_REFERENCE, EnvBoard, Leaderboard, Row, RunInfo
from leaderboard.pareto import ParetoPlot, pareto_plots
from leaderboard.published import PUBLISHED_LABEL, published_rows
from leaderboard.stats import CONFIDENCE, Estimate

HIGHER, LOWER, NEITHER = 1, -1, 0


def fmt_flops(value: float) -> str:
    """FLOPs in compact scientific notation: 1.2e15."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_sig(value: float, digits: int = 3) -> str:
    """A number to ``digits`` significant digits without scientific notation: 0.0123, 12.3, 1230."""
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    decimals = digits - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{max(decimals, 0)}f}"


def fmt_ratio(value: float) -> str:
    """A compute ratio to 2 significant digits: 0.65×, 0.0020×, 1.0×."""
    return f"{fmt_sig(value, 2)}×"


def fmt_estimate(value: Estimate | None) -> str:
    if value is None:
        return "–"
    if value.half_width is None:
        return f"{value.mean:.1f} (n={value.n})"
    return f"{value.mean:.1f} ± {value.half_width:.1f}"


def estimate_detail(value: Estimate | None) -> str:
    if value is None:
        return "no episodes of this kind"
    seeds = "per seed: " + ", ".join(f"{v:.1f}" for v in value.values)
    if value.half_width is None:
        return seeds + "; one seed, no interval"
    return seeds + f"; {CONFIDENCE:.0%} t-interval [{value.low:.1f}, {value.high:.1f}]"


def per_seed(values: Sequence[object]) -> str:
    """One value when all seeds agree, else each seed's value."""
    texts = [str(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else " / ".join(texts)


@dataclass(frozen=True)
class TableCell:
    text: str
    sort: float | None = None
    best: bool = False
    title: str = ""


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[TableCell, ...], ...]
    caption: str = ""
    published: bool = False


@dataclass(frozen=True)
class Column:
    """A table column: its header, how a row fills it, and which direction is better (for highlighting)."""

    header: str
    cell: Callable[[Row], TableCell]
    better: int = NEITHER


def _mark_best(rows: list[list[TableCell]], columns: Sequence[Column]) -> list[list[TableCell]]:
    for index, column in enumerate(columns):
        values = [row[index].sort for row in rows if row[index].sort is not None]
        if column.better == NEITHER or len(values) < 2 or len(set(values)) == 1:
            continue
        best = max(values) if column.better == HIGHER else min(values)
        for row in rows:
            if row[index].sort == best:
                row[index] = replace(row[index], best=True)
    return rows


def _table(key: str, title: str, rows: Sequence[Row], columns: Sequence[Column], caption: str = "") -> Table:
    cells = _mark_best([[column.cell(row) for column in columns] for row in rows], columns)
    return Table(key, title, tuple(c.header for c in columns), tuple(tuple(r) for r in cells), caption)


def _identity_columns(show_run: bool) -> list[Column]:
    run = Column("run", lambda r: TableCell(r.run.label, title=f"{r.run.run_id} · {r.run.machine}"))
    strategy = Column("strategy", lambda r: TableCell(r.strategy))
    seeds = Column("seeds", lambda r: TableCell(str(len(r.seeds)), len(r.seeds),
                                                title="seeds " + ", ".join(map(str, r.seeds))))
    return [run, strategy, seeds] if show_run else [strategy, seeds]


def _metric_column(key: str, label: str) -> Column:
    def cell(row: Row) -> TableCell:
        value = row.values.get(key)
        return TableCell(fmt_estimate(value), value.mean if value else None, title=estimate_detail(value))
    return Column(label, cell, HIGHER)


def _baseline_column(primary: str) -> Column:
    def cell(row: Row) -> TableCell:
        value = row.vs_baseline
        if value is None:
            return TableCell("–", title=f"the {BASELINE} policy itself, or no {BASELINE} row in this run")
        if value.half_width is None:
            return TableCell(f"{value.mean:+.1f}", value.mean, title="1 paired episode, no interval")
        return TableCell(f"{value.mean:+.1f} ± {value.half_width:.1f}", value.mean,
                         title=f"{value.n} paired episodes; {CONFIDENCE:.0%} t-interval "
                               f"[{value.low:+.1f}, {value.high:+.1f}]")
    return Column(f"Δ {primary} vs {BASELINE}", cell, HIGHER)


def results_table(board: EnvBoard, show_run: bool) -> Table:
    episodes = Column("episodes", lambda r: TableCell(str(sum(r.episodes)), sum(r.episodes),
                                                      title=f"per seed: {per_seed(r.episodes)}"))
    columns = [*_identity_columns(show_run), episodes, *(_metric_column(m.key, m.label) for m in board.columns)]
    primary = board.scoring.primary.label
    caption = (f"Sorted by {primary}. "
               + "; ".join(f"{m.label}: {m.help}" for m in board.scoring.metrics) + ". "
               + f"Values: mean over seeds ± half-width of the {CONFIDENCE:.0%} Student-t interval; "
               "n=1 marks a single seed (no interval). Best measured value per column in bold.")
    if any(row.vs_baseline is not None for row in board.rows):
        columns.append(_baseline_column(primary))
        caption += (f" Δ {primary} vs {BASELINE}: the mean per-episode difference to the {BASELINE} policy of "
                    f"the same run on the same held-out tasks, ± half-width of the {CONFIDENCE:.0%} t-interval "
                    "over those paired episodes: evaluation noise only, not variation between training runs.")
    return _table(f"{board.env}-results", f"{board.scoring.title}: held-out results", board.rows, columns, caption)


def published_table(board: EnvBoard) -> Table | None:
    rows = published_rows(board.env)
    if not rows:
        return None
    shown = [m for m in board.columns if any(m.key in r.values for r in rows)]
    shown_keys = {m.key for m in shown}

    def note(values: dict[str, float], text: str) -> str:
        extra = [f"{key.split(':')[-1]} {value:.1f}" for key, value in values.items() if key not in shown_keys]
        return "; ".join([text, *extra])

    table_rows = tuple(
        (TableCell(r.source), TableCell(r.model), TableCell(r.method),
         *(TableCell(f"{r.values[m.key]:.1f}" if m.key in r.values else "–", r.values.get(m.key)) for m in shown),
         TableCell(note(r.values, r.note)))
        for r in rows)
    return Table(f"{board.env}-published", f"{board.scoring.title}: {PUBLISHED_LABEL}",
                 ("source", "model", "method", *(m.label for m in shown), "note"), table_rows,
                 "Context only: other models, other hardware, other evaluation code. Not comparable with the "
                 "measured rows above; not ranked, highlighted or plotted.", published=True)


def _phases(row: Row) -> str:
    return ", ".join(f"{phase} {fmt_flops(flops)}" for phase, flops in row.compute.flops_by_phase.items()) or "–"


def _signed_estimate(value: Estimate | None, unit: str, missing: str) -> TableCell:
    """A difference as ``+1.2 ± 3.4`` (``+1.2 (n=1)`` without an interval), its per-unit values in the title."""
    if value is None:
        return TableCell("–", title=missing)
    values = ", ".join(f"{v:+.1f}" for v in value.values)
    if value.half_width is None:
        return TableCell(f"{value.mean:+.1f} (n={value.n})", value.mean, title=f"one {unit}: {values}; no interval")
    return TableCell(f"{value.mean:+.1f} ± {value.half_width:.1f}", value.mean,
                     title=f"per {unit}: {values}; {CONFIDENCE:.0%} t-interval [{value.low:+.1f}, {value.high:+.1f}]")


def compute_table(board: EnvBoard, show_run: bool) -> Table:
    def ratio(row: Row) -> TableCell:
        if row.compute_ratio is None:
            return TableCell("–", title="no finished rl-only cell in this run")
        return TableCell(fmt_ratio(row.compute_ratio), row.compute_ratio)

    def less(row: Row) -> TableCell:
        if not row.compute_ratio:
            return TableCell("–", title="no finished rl-only cell in this run, or no FLOPs recorded")
        return TableCell(fmt_ratio(1 / row.compute_ratio), 1 / row.compute_ratio,
                         title="rl-only's FLOPs per seed divided by this row's (the paper's 'x less compute')")

    primary = board.scoring.primary.label
    vs_rl = Column(f"Δ {primary} vs rl-only", lambda r: _signed_estimate(
        r.vs_rl_only, "seed", "rl-only itself, or no rl-only cell with a common seed"), HIGHER)

    columns = [
        *_identity_columns(show_run),
        Column("FLOPs", lambda r: TableCell(fmt_flops(r.compute.flops), r.compute.flops, title="per seed: "
                                            + per_seed([fmt_flops(c.flops) for c in r.seed_compute])), LOWER),
        Column("× rl-only", ratio, LOWER),
        Column("rl-only ÷ this", less, HIGHER),
        vs_rl,
        Column("device-hours", lambda r: TableCell(fmt_sig(r.compute.device_hours), r.compute.device_hours), LOWER),
        Column("wall hours", lambda r: TableCell(fmt_sig(r.compute.wall_hours), r.compute.wall_hours), LOWER),
        Column("tokens", lambda r: TableCell(fmt_flops(r.compute.tokens), r.compute.tokens), LOWER),
        Column("env steps", lambda r: TableCell(f"{r.compute.env_steps:,.0f}", r.compute.env_steps), LOWER),
        Column("FLOPs by phase", lambda r: TableCell(_phases(r))),
        Column("devices", lambda r: TableCell(", ".join(r.compute.devices) or "–")),
    ]
    return _table(f"{board.env}-compute", f"{board.scoring.title}: compute per strategy (per seed)", board.rows,
                  columns, "Mean per seed, shared work included where the strategy uses it (the pretrained base, "
                  "shared by every strategy including the untrained policy, is charged to none). 'rl-only ÷ this': "
                  f"how many times less compute than rl-only the row spent, read beside its score difference to "
                  f"{RL_REFERENCE} (mean of per-seed differences ± {CONFIDENCE:.0%} t-interval across seeds). "
                  "Best in bold.")


def comparison_table(board: EnvBoard, show_run: bool) -> Table:
    """Each PRISM variant against random, sft-only, rl-only and sft-then-rl, seed by seed."""
    primary = board.scoring.primary.label
    run = [TableCell(c.run.label) for c in board.comparisons] if show_run else []
    rows = tuple(
        ((run[i],) if show_run else ())
        + (TableCell(c.strategy), TableCell(c.reference), TableCell(str(c.difference.n), c.difference.n),
           _signed_estimate(c.difference, "seed", ""),
           TableCell("–" if c.difference.half_width is None else
                     ("above" if c.difference.low > 0 else "below" if c.difference.high < 0 else "not resolved")))
        for i, c in enumerate(board.comparisons))
    columns = ("run",) * show_run + ("PRISM variant", "against", "seeds", f"Δ {primary}", "interval excludes 0")
    return Table(f"{board.env}-prism", f"{board.scoring.title}: PRISM against its references, paired by seed", columns,
                 rows, f"Δ: the mean over seeds of (variant − reference) {primary} on the same seed (same training "
                 f"tasks), ± half-width of the {CONFIDENCE:.0%} Student-t interval across those seeds; a seed is one "
                 "whole training run, so this includes training-to-training variation. 'above'/'below': the "
                 "interval lies entirely on one side of 0; 'not resolved': the seeds cannot tell them apart.")


def rl_table(board: EnvBoard, show_run: bool) -> Table:
    """Whether GRPO had anything to learn from: groups with unequal rewards, and how far each update moved."""
    rows = [row for row in board.rows if row.rl is not None]

    def signal(row: Row) -> TableCell:
        rl = row.rl
        return TableCell(f"{rl.groups_with_signal}/{rl.groups} ({rl.signal_fraction:.0%})", rl.signal_fraction)

    columns = [
        *_identity_columns(show_run),
        Column("iterations", lambda r: TableCell(str(r.rl.iterations), r.rl.iterations)),
        Column("groups with signal", signal, HIGHER),
        Column("mean policy KL per update", lambda r: TableCell(f"{r.rl.mean_policy_kl:.2e}", r.rl.mean_policy_kl)),
    ]
    return _table(f"{board.env}-rl", f"{board.scoring.title}: GRPO signal", rows, columns,
                  "Summed over a row's seeds. A group is one task's samples; only groups whose rewards differ have a "
                  "non-zero advantage and move the policy. Policy KL: KL(before ‖ after) of each update on the "
                  "tokens it trained on, averaged over iterations.")


def _routing(describe: Callable[[RoutingSummary], object]) -> Callable[[Row], TableCell]:
    """A routing column: one value when all seeds agree, else one per seed; '–' where nothing was routed."""
    def cell(row: Row) -> TableCell:
        if all(summary is None for summary in row.routing):
            return TableCell("–", title="no routing summary (untrained, or not recorded)")
        values = [describe(summary) if summary else "–" for summary in row.routing]
        single_number = len(set(values)) == 1 and isinstance(values[0], int)
        return TableCell(per_seed(values), values[0] if single_number else None)
    return cell


MAX_REASONS = 4


def _reasons(summary: RoutingSummary) -> str:
    """Items per reason, the most common first; a router that words every item differently is cut
    short (each item's own reason is in the cell's routing.jsonl)."""
    ranked = sorted(summary.reasons.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{reason}: {count}" for reason, count in ranked[:MAX_REASONS])
    rest = ranked[MAX_REASONS:]
    if rest:
        shown += f", and {len(rest)} more reasons for {sum(count for _, count in rest)} items (routing.jsonl)"
    return shown or "–"


def routing_table(board: EnvBoard, show_run: bool) -> Table:
    columns = [
        *_identity_columns(show_run),
        Column("SFT set", _routing(lambda r: r.sft_count)),
        Column("RL set", _routing(lambda r: r.rl_count)),
        Column("reasons", _routing(_reasons)),
        Column("shared phases charged", _routing(lambda r: ", ".join(r.shared_phases) or "none")),
    ]
    return _table(f"{board.env}-routing", f"{board.scoring.title}: routing split sizes", board.rows, columns,
                  "From each cell's routing.json; one value when all seeds agree, else one per seed (a / b / c).")


def not_counted_table(board: Leaderboard) -> Table:
    rows = tuple(
        (TableCell(info.label), TableCell(item.status.env), TableCell(item.status.strategy),
         TableCell(str(item.status.seed)), TableCell(item.status.state), TableCell(item.reason))
        for info, item in board.not_counted)
    return Table("not-counted", "Cells not counted", ("run", "env", "strategy", "seed", "state", "reason"), rows,
                 "Only cells whose status is done count; these are left out of every number above.")


def _run_row(info: RunInfo) -> tuple[TableCell, ...]:
    config = info.manifest.config
    envs = "; ".join(f"{e.get('name')}: {', '.join(e.get('eval_splits', []))} × "
                     f"{e.get('eval_episodes') or 'all'} episodes" for e in config.get("envs", []))
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.manifest.created_at))
    return (TableCell(info.label), TableCell(info.run_id), TableCell(info.model), TableCell(info.machine),
            TableCell(created + " UTC"), TableCell(str(config.get("seeds", "?"))), TableCell(envs),
            TableCell(str(info.root)))


def runs_table(board: Leaderboard) -> Table:
    return Table("runs", "Runs", ("label", "run_id", "model", "machine", "created", "seeds", "evaluation", "directory"),
                 tuple(_run_row(info) for info in board.runs))


def frontier_text(plot: ParetoPlot) -> str:
    several_runs = len({p.row.run.run_id for p in plot.points}) > 1
    frontier = ", ".join(p.row.strategy + (f" ({p.row.run.label})" if several_runs else "")
                         + f" {fmt_estimate(p.score)} at {fmt_flops(p.flops)} FLOPs" for p in plot.frontier)
    return f"Frontier ({plot.metric_label} against FLOPs per seed): {frontier or 'no points'}."


@dataclass(frozen=True)
class Section:
    """Everything about one environment."""

    board: EnvBoard
    results: Table
    published: Table | None
    compute: Table
    routing: Table
    plots: tuple[ParetoPlot, ...]
    comparisons: Table | None = None
    rl: Table | None = None


@dataclass(frozen=True)
class Document:
    title: str
    leaderboard: Leaderboard
    warnings: tuple[str, ...]
    run_notes: tuple[tuple[RunInfo, tuple[str, ...]], ...]
    general_notes: tuple[str, ...]
    sections: tuple[Section, ...]
    not_counted: Table
    runs: Table


def document(board: Leaderboard, warnings: Sequence[str], run_notes: Sequence[tuple[RunInfo, Sequence[str]]],
             general_notes: Sequence[str]) -> Document:
    show_run = board.compare
    sections = tuple(
        Section(b, results_table(b, show_run), published_table(b), compute_table(b, show_run),
                routing_table(b, show_run), tuple(pareto_plots(b)),
                comparison_table(b, show_run) if b.comparisons else None,
                rl_table(b, show_run) if any(row.rl for row in b.rows) else None)
        for b in board.boards)
    title = "Leaderboard: " + (" vs ".join(r.label for r in board.runs) if board.compare else board.runs[0].run_id)
    return Document(title, board, tuple(warnings), tuple((info, tuple(n)) for info, n in run_notes),
                    tuple(general_notes), sections, not_counted_table(board), runs_table(board))
