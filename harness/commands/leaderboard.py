"""``harness leaderboard``: the HTML + Markdown report of one run, or of several runs with --compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()

DEFAULT_COMPARE_OUT = Path("leaderboard-report")


def leaderboard(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Run directories of `harness eval`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default: RUN_DIR/report for one "
                                             f"run, ./{DEFAULT_COMPARE_OUT} with --compare).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Merge several runs (other machines, other models) into "
                                          "one report, one row per (run, strategy), warning where configs differ.")]
    = False,
) -> None:
    """Write the leaderboard report: tables (mean ± 95 % t-interval over seeds), compute, routing, Pareto plots.

    Writes leaderboard.html (one self-contained file, opens offline), leaderboard.md, and the plots as PNG/SVG.

    Only finished (done) cells count; the others are listed in the report.
    """
    from environments.core.registry import env_specs
    from leaderboard.load import RunLoadError
    from leaderboard.report import MARKDOWN_NAME, ReportError, write_report

    target = out or (DEFAULT_COMPARE_OUT if compare else run_dirs[0] / "report")
    installed = {name: spec.report_scoring for name, spec in env_specs().items()}  # for runs that recorded none
    try:
        page = write_report(run_dirs, target, compare=compare, known_scoring=installed)
    except (RunLoadError, ReportError) as exc:
        console.print(f"[bold red]cannot write the leaderboard:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"report: [bold]{page}[/]")
    console.print(f"summary: [bold]{page.parent / MARKDOWN_NAME}[/]")
