"""``harness eval``: run a comparison (environments × strategies × seeds), then write the report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer
from rich.console import Console

log = logging.getLogger(__name__)
console = Console()
if not console.is_terminal:  # logs and CI: wide enough for the live table
    console = Console(width=160)


def eval_command(
    config: Path = typer.Option(None, "--config", "-c", help="YAML/TOML config file (default: the embedded default)."),
    preset: str = typer.Option(None, help="A built-in preset instead of a file: default, paper."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a field: -s sft.epochs=2 -s envs.0.train_tasks=8"),
    run_dir: Path = typer.Option(None, help="Run directory (default: OUTPUT_DIR/NAME; an existing one is resumed)."),
    fresh: bool = typer.Option(False, help="Discard an existing run directory and start over."),
    dry_run: bool = typer.Option(False, help="Validate the config end to end (data, splits, strategies, model "
                                 "source, backends) and print the plan, without training."),
    report: bool = typer.Option(True, help="Write the leaderboard report into the run directory at the end."),
) -> None:
    """Run a comparison of routing strategies and write the leaderboard report.

    With no arguments it runs the embedded default (both environments, every built-in strategy plus
    the untrained policy, one seed, a tiny model; about 15 minutes on 2 CPU cores). Interrupt it at any
    moment and run the same command again: finished cells are kept, the unfinished one restarts.
    """
    from harness.config import ConfigError, load_eval_config

    try:
        cfg = load_eval_config(config, preset, set_)
    except ConfigError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None

    from harness.pipeline import PlanError, TrainingPipeline, check_plan

    try:
        plan = check_plan(cfg)
    except PlanError as exc:
        console.print(f"[bold red]cannot run this config:[/] {exc}")
        raise typer.Exit(2) from None
    for line in plan:
        console.print(f"[green]✓[/] {line}")
    if dry_run:
        console.print("[bold]dry run complete[/]: the config is valid end to end; nothing was trained.")
        return

    from rich.live import Live

    from harness.display import render
    from harness.runner import EvalRunner
    from harness.runs import RunDirError, open_run

    try:
        run = open_run(cfg, run_dir, preset=preset or ("" if config else "default"), fresh=fresh)
    except RunDirError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"run directory: [bold]{run.root}[/]")
    started = time.monotonic()
    pipeline = TrainingPipeline(cfg, run)
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        runner = EvalRunner(cfg, run, pipeline, on_update=lambda cells: live.update(render(cells, started)))
        live.update(render(runner.cells, started))
        statuses = runner.run()
    failed = [s for s in statuses if s.state == "failed"]
    if report:
        from leaderboard.report import write_report

        out = write_report([run.root], run.root / "report")
        console.print(f"report: [bold]{out}[/]")
    if failed:
        console.print(f"[bold red]{len(failed)} cell(s) failed[/]: " + ", ".join(s.cell_id for s in failed))
        raise typer.Exit(1)
