"""``write_report``: run directories in, ``leaderboard.html`` + ``leaderboard.md`` + plot files out."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from foundation.scoring import Scoring
from leaderboard import aggregate, html, markdown, notes, plots
from leaderboard.load import load_runs
from leaderboard.tables import Document, document

log = logging.getLogger(__name__)

HTML_NAME = "leaderboard.html"
MARKDOWN_NAME = "leaderboard.md"


class ReportError(ValueError):
    """The runs cannot be put into one report as asked."""


def build_document(run_dirs: Sequence[str | Path], compare: bool = False,
                   known_scoring: Mapping[str, Scoring] | None = None) -> Document:
    """Load, aggregate and lay out the report of ``run_dirs`` (several only with ``compare``); ``known_scoring``
    scores the environments of runs that recorded no scoring (see :func:`leaderboard.metrics.env_scoring`)."""
    if len(run_dirs) > 1 and not compare:
        raise ReportError(f"{len(run_dirs)} run directories given: pass --compare to merge them into one report")
    runs = load_runs(list(run_dirs))
    board = aggregate.build(runs, compare, known_scoring)
    warnings = [*notes.incomparabilities(board.runs), *board.warnings]
    run_notes = [(info, notes.run_notes(board, info)) for info in board.runs]
    return document(board, warnings, run_notes, notes.GENERAL_NOTES)


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, compare: bool = False,
                 known_scoring: Mapping[str, Scoring] | None = None) -> Path:
    """Write the report of ``run_dirs`` into ``out_dir`` and return the path of the HTML page."""
    doc = build_document(run_dirs, compare, known_scoring)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for section in doc.sections:
        for plot in section.plots:
            plots.export(plot, out)
    page = out / HTML_NAME
    page.write_text(html.render(doc), encoding="utf-8")
    (out / MARKDOWN_NAME).write_text(markdown.render(doc), encoding="utf-8")
    log.info("wrote %s and %s", page, out / MARKDOWN_NAME)
    return page
