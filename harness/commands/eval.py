"""``harness eval``: run a comparison (environments × strategies × seeds), then write the report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from harness.commands.signals import stop_on_interrupt_or_term

if TYPE_CHECKING:
    from foundation.records import CellStatus, RunDir
    from harness.config import EvalConfig
    from harness.distributed import RayEnvProviders

log = logging.getLogger(__name__)
console = Console()
if not console.is_terminal:  # logs and CI: wide enough for the live table
    console = Console(width=160)


def _with_ray(cfg: EvalConfig, address: str | None, workers: int | None) -> EvalConfig:
    """[scale-out] The config with ``--ray``/``--ray-workers`` over its ``ray`` section, validated like a file."""
    if address is None and workers is None:
        return cfg
    from harness.config import validate_config

    section = cfg.ray.model_dump() if cfg.ray is not None else {}
    section.update({key: value for key, value in (("address", address), ("workers", workers)) if value is not None})
    return validate_config({**cfg.model_dump(), "ray": section}, "--ray/--ray-workers")


@contextmanager
def _ray_envs(cfg: EvalConfig) -> Iterator[RayEnvProviders | None]:
    """[scale-out] One Ray connection for the whole run (None without ``ray``), closed however the run ends."""
    if cfg.ray is None:
        yield None
        return
    from harness.commands.rollout import connect_ray

    with connect_ray(cfg.ray.address, cfg.ray.workers) as envs:
        described = envs.describe()
        console.print(f"environment sessions: {len(described['workers'])} Ray actors on {described['nodes']} "
                      f"node(s) at {cfg.ray.address}")
        yield envs
        steps = sum(worker["steps"] for worker in envs.workers.placement())
        console.print(f"environment sessions: {steps} steps played on Ray actors, "
                      f"{envs.describe()['recoveries']} session(s) moved off a lost actor")


def _ray_facts(cfg: EvalConfig, envs: RayEnvProviders | None) -> dict[str, Any] | None:
    """[scale-out] What ``run.json`` records of the Ray cluster this attempt used (None: no Ray)."""
    if envs is None or cfg.ray is None:
        return None
    described = envs.describe()
    return {"address": cfg.ray.address, "workers": len(described["workers"]), "nodes": described["nodes"]}


def _prepare(cfg: EvalConfig) -> None:
    """Build (or find in the cache) the pretrained base of every environment that has one, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.pipeline import TrainingPipeline

    bases = [env for env in cfg.envs if cfg.pretrains_base(env)]
    if not bases:
        console.print("nothing to prepare: this config has no pretrained base to build")
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with closing(TrainingPipeline(cfg, None)) as pipeline, Progress(*columns, console=console) as bars:
        for env in bases:
            started = time.monotonic()

            def progress(phase: str, total: int, name: str = env.name) -> Callable[[int], None]:
                task = bars.add_task(f"{name}: {phase}", total=total or None)
                return lambda n: bars.advance(task, n)

            base = pipeline.pretrained_base(env, progress)
            how = f"built in {time.monotonic() - started:.0f} s" if base.built else "already in the cache"
            bars.console.print(f"[green]✓[/] {env.name}: pretrained base {base.key} {how} ({base.path})")


def _run_cells(cfg: EvalConfig, run: RunDir, started: float) -> list[CellStatus]:
    """Every cell of ``run`` not yet done, with the live table; the Ray connection and the pipeline's
    environment workers are closed however it ends."""
    from rich.live import Live

    from harness.display import render
    from harness.pipeline import TrainingPipeline
    from harness.runner import EvalRunner
    from harness.runs import record_invocation

    with _ray_envs(cfg) as envs, Live(console=console, refresh_per_second=2, transient=False) as live, \
            closing(TrainingPipeline(cfg, run, envs=envs)) as pipeline:
        record_invocation(run, _ray_facts(cfg, envs))
        runner = EvalRunner(cfg, run, pipeline, on_update=lambda cells: live.update(render(cells, started)))
        live.update(render(runner.cells, started))
        return runner.run()


def eval_command(
    config: Path = typer.Option(None, "--config", "-c", help="YAML/TOML config file (default: the embedded default)."),
    preset: str = typer.Option(None, help="A built-in preset instead of a file: default, study, select, paper."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a field: -s sft.epochs=2 -s envs.0.train_tasks=8"),
    run_dir: Path = typer.Option(None, help="Run directory (default: OUTPUT_DIR/NAME; an existing one is resumed)."),
    fresh: bool = typer.Option(False, help="Discard an existing run directory and start over."),
    dry_run: bool = typer.Option(False, help="Validate the config end to end (data, splits, strategies, model "
                                 "source, backends) and print the plan, without training."),
    report: bool = typer.Option(True, help="Write the leaderboard report into the run directory at the end."),
    prepare: bool = typer.Option(False, help="Only build what every run of this config shares (the pretrained "
                                 "bases, into the cache), then stop: the set-up step before a timed run."),
    # [scale-out] Ray flags (harness.distributed), as for `harness rollout`
    ray: str = typer.Option(None, "--ray", help="Ray cluster address (HOST:PORT, auto, or local): every rollout's "
                                               "environment sessions run as actors spread over its nodes "
                                               "(config: ray.address)."),
    ray_workers: int = typer.Option(None, "--ray-workers", min=1,
                                    help="Environment actors on the Ray cluster (default: one per CPU; "
                                         "config: ray.workers)."),
) -> None:
    """Run a comparison of routing strategies and write the leaderboard report.

    With no arguments it runs the embedded default (both environments, the core strategies plus the
    untrained policy, one seed, a tiny pretrained base; about 10 minutes on 2 quiet CPU cores once the
    bases are cached, which ``--prepare`` does ahead of the run in about 2; ``--preset study`` runs every
    strategy on 5 seeds in about 86). Interrupt it at any moment and run the same command again:
    finished cells are kept, the unfinished one restarts.
    """
    from harness.config import ConfigError, load_eval_config

    run_flags = (("--run-dir", run_dir is not None), ("--fresh", fresh), ("--ray", ray is not None),
                 ("--ray-workers", ray_workers is not None))
    unused = [flag for flag, given in run_flags if given]
    if prepare and unused:  # it builds into the cache only: a flag it would ignore is a mistake to say so
        console.print(f"[bold red]--prepare builds the pretrained bases into the cache and opens no run: "
                      f"{', '.join(unused)} would be ignored; leave them out[/]")
        raise typer.Exit(2)
    try:
        cfg = _with_ray(load_eval_config(config, preset, set_), ray, ray_workers)
    except ConfigError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None

    from harness.pipeline import PlanError, check_plan

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
    if prepare:  # no run directory: what it builds is shared by every run of the config, whatever the code
        _prepare(cfg)
        return

    from harness.runs import RunDirError, open_run

    try:
        run = open_run(cfg, run_dir, preset=preset or ("" if config else "default"), fresh=fresh)
    except RunDirError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"run directory: [bold]{run.root}[/]")
    started = time.monotonic()
    stop_on_interrupt_or_term()  # kill and Ctrl-C unwind: the cell is marked interrupted, env workers are stopped
    try:
        statuses = _run_cells(cfg, run, started)
        if report:
            from leaderboard.report import write_report

            out = write_report([run.root], run.root / "report")
            console.print(f"report: [bold]{out}[/]")
    except KeyboardInterrupt:
        done = sum(status.state == "done" for status in run.cells())
        console.print(f"[bold yellow]interrupted[/] with {done} cell(s) done; run the same command again to "
                      "continue (finished cells are kept, the interrupted one restarts)")
        raise typer.Exit(130) from None
    failed = [s for s in statuses if s.state == "failed"]
    if failed:
        console.print(f"[bold red]{len(failed)} cell(s) failed[/]: " + ", ".join(s.cell_id for s in failed))
        raise typer.Exit(1)
