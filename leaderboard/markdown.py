"""The Markdown summary: the same document as the HTML page, readable in a terminal or a pull request."""

from __future__ import annotations

from leaderboard.pareto import ParetoPlot
from leaderboard.tables import Document, Table, TableCell, frontier_text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cell(cell: TableCell) -> str:
    text = _escape(cell.text)
    return f"**{text}**" if cell.best and text else text


def table(t: Table) -> list[str]:
    lines = [f"### {t.title}", ""]
    if t.caption:
        lines += [t.caption, ""]
    if not t.rows:
        return lines + ["(none)", ""]
    lines.append("| " + " | ".join(_escape(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return lines + [""]


def _plot(plot: ParetoPlot) -> list[str]:
    lines = [f"![{plot.env_title}: {plot.metric_label} against FLOPs]({plot.slug}.png)", ""]
    lines.append(frontier_text(plot))
    lines += [f"Not plotted: {item}." for item in plot.left_out]
    return lines + [""]


def render(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    if doc.warnings:
        lines += ["## ⚠ Warnings", ""] + [f"- {w}" for w in doc.warnings] + [""]
    lines += ["## What this report can and cannot tell", ""]
    for _info, notes in doc.run_notes:
        lines += [f"- {note}" for note in notes]
    lines += [f"- {note}" for note in doc.general_notes] + [""]
    for section in doc.sections:
        lines += [f"## {section.board.scoring.title}", ""]
        lines += table(section.results)
        if section.comparisons:
            lines += table(section.comparisons)
        for plot in section.plots:
            lines += _plot(plot)
        lines += table(section.compute)
        if section.rl:
            lines += table(section.rl)
        lines += table(section.routing)
        if section.published:
            lines += table(section.published)
    lines += table(doc.not_counted)
    lines += table(doc.runs)
    return "\n".join(lines).rstrip() + "\n"
