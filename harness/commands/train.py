"""``harness train sft|rl|cost`` and ``harness probe``: the prism_train trainers over files on disk.

Configs are YAML/TOML/JSON files holding the fields of ``prism_train.config.SFTConfig`` /
``RLConfig`` / ``ProbeRunConfig`` (nested ``lora:`` and ``prompt:`` sections; the classes ``harness eval``
composes too), overridden with ``--set key.path=value``; ``--model`` (and for training ``--out``) are
shortcuts for the fields every run needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Train a policy: SFT on trajectories, GRPO in an environment; compare compute.",
                  no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML/TOML/JSON config file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a field: -s lora.rank=8.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model directory or prepared model name (config: model).")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (config: output_dir).")]
LedgerOpt = Annotated[Path | None, typer.Option(help="Append this run's compute to a ledger (JSONL).")]
StrategyOpt = Annotated[str, typer.Option(help="Strategy name recorded in the ledger.")]
FreshOpt = Annotated[bool, typer.Option(help="Ignore existing checkpoints in the output directory.")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]{message}[/]")
    return typer.Exit(2)


def _load(cls: type, config: Path | None, overrides: list[str] | None, model: str | None, out: Path | None) -> Any:
    from harness.config import ConfigError, apply_overrides, read_config_file
    from prism_train.config import load_config

    try:
        raw = apply_overrides(read_config_file(config) if config else {}, overrides or [])
        if model:
            raw["model"] = model
        if out:
            raw["output_dir"] = str(out)
        cfg = load_config(cls, raw, str(config) if config else "--set/--model/--out")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    return cfg


def _ledger(path: Path | None, strategy: str):
    from prism_train.ledger import Ledger

    return Ledger(path, strategy=strategy)


@app.command("sft")
def sft(
    trajectories: Annotated[Path, typer.Option("--trajectories", "-t", exists=True, dir_okay=False,
                                               help="Trajectories to imitate (JSONL).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
    routing: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                 help="Train only on the SFT set of this routing decision.")] = None,
    ledger: LedgerOpt = None,
    strategy: StrategyOpt = "sft",
    fresh: FreshOpt = False,
) -> None:
    """Supervised fine-tuning (loss on the actions only); resumes from the newest checkpoint."""
    from environments.core.trajectory import read_trajectories
    from prism_train.sft import SFTConfig, SFTTrainer

    cfg = _load(SFTConfig, config, set_, model, out)
    trajs = list(read_trajectories(trajectories))
    if routing is not None:
        from prism_train.routers import read_decision

        wanted = set(read_decision(routing).sft_ids)
        missing = wanted - {t.id for t in trajs}
        if missing:
            raise _fail(f"{len(missing)} trajectories of the routing decision are not in {trajectories}, "
                        f"e.g. {sorted(missing)[:3]}")
        trajs = [t for t in trajs if t.id in wanted]
    if not trajs:
        raise _fail("no trajectories to train on")
    try:
        result = SFTTrainer(cfg, trajs, ledger=_ledger(ledger, strategy), resume=not fresh).train()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    last = result.history[-1].loss if result.history else float("nan")
    console.print(f"SFT done: {result.steps} steps, last loss {last:.4f} -> {result.final_dir}")


@app.command("rl")
def rl(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
    routing: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                 help="Train on the RL task set of this routing decision.")] = None,
    split: Annotated[str | None, typer.Option(help="Or: train on tasks of this split of config.env.")] = None,
    limit: Annotated[int | None, typer.Option(help="With --split: its first N tasks.")] = None,
    ledger: LedgerOpt = None,
    strategy: StrategyOpt = "rl",
    fresh: FreshOpt = False,
) -> None:
    """GRPO in the environment with a transformers backend; resumes from the newest checkpoint."""
    from agents.backends.hf import TransformersBackend
    from prism_train.device import resolve_device
    from prism_train.rl import RLConfig, RLError, RLTrainer
    from prism_train.routers import Task
    from prism_train.trainer import resolve_model_path

    cfg = _load(RLConfig, config, set_, model, out)
    if (routing is None) == (split is None):
        raise _fail("give exactly one of --routing and --split")
    if routing is not None:
        from prism_train.routers import read_decision

        tasks = read_decision(routing).rl_tasks
    else:
        from agents.tasks import split_tasks

        try:
            tasks = [Task(cfg.env, t.task_id, split=split) for t in split_tasks(cfg.env, split, limit)]
        except ValueError as exc:
            raise _fail(str(exc)) from None
    if not tasks:
        raise _fail("the task set is empty: nothing to explore")
    # The trainer pushes its adapter (or weights) to the backend before the first rollout.
    backend = TransformersBackend(resolve_model_path(cfg.model), device=str(resolve_device(cfg.device)), seed=cfg.seed)
    try:
        result = RLTrainer(cfg, tasks, backend, ledger=_ledger(ledger, strategy), resume=not fresh).train()
    except (RLError, ValueError) as exc:
        raise _fail(str(exc)) from None
    last = result.history[-1] if result.history else None
    summary = f"reward {last.mean_reward:.3f}, success {last.success_rate:.2f}" if last else "nothing left to do"
    console.print(f"RL done: {result.iterations} iterations ({summary}) -> {result.final_dir}")


def probe(
    trajectories: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Trajectories (JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Scores file to write (JSONL).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    method: Annotated[str, typer.Option(help="batched (one pass per batch) or naive (reference).")] = "batched",
    ledger: LedgerOpt = None,
    strategy: StrategyOpt = "probe",
) -> None:
    """The PRISM probe: per-trajectory gradient norms of every projection matrix of the frozen model.

    The config holds the fields of prism_train.config.ProbeRunConfig (batch_size, normalization, ...,
    model, device and a prompt: section), e.g. -s batch_size=4 -s prompt.history=2.
    """
    from environments.core.trajectory import read_trajectories
    from prism_train.config import ProbeRunConfig
    from prism_train.device import resolve_device
    from prism_train.formatting import TrajectoryTokenizer
    from prism_train.modeling import load_causal_lm, load_tokenizer
    from prism_train.probe import probe as run_probe
    from prism_train.scores import write_scores
    from prism_train.trainer import resolve_model_path

    cfg = _load(ProbeRunConfig, config, set_, model, None)
    try:
        path = resolve_model_path(cfg.model)
        tokenizer = load_tokenizer(path)
        lm = load_causal_lm(path, device=resolve_device(cfg.device))
        trajs = list(read_trajectories(trajectories))
        tokenized = TrajectoryTokenizer(tokenizer, cfg.prompt).tokenize_all(trajs)
        empty = [t.id for t in tokenized if t.n_targets == 0]
        if empty:
            raise ValueError(f"{len(empty)} trajectories have no step within max_length={cfg.prompt.max_length}, "
                             f"e.g. {empty[:3]}; raise prompt.max_length or shorten the prompt")
        scores = run_probe(lm, trajs, tokenized, cfg, ledger=_ledger(ledger, strategy), method=method,
                           model_name=cfg.model)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    write_scores(out, scores)
    console.print(f"probed {len(scores)} trajectories ({len(scores[0].norms)} matrices each) -> {out}")


@app.command("cost")
def cost(
    ledgers: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Ledger files (JSONL).")],
    baseline: Annotated[str, typer.Option(help="Strategy the ratios are relative to.")] = "rl-only",
) -> None:
    """Compute per strategy (per run) and its ratio to the baseline (rl-only)."""
    from prism_train.ledger import compare_strategies, cost_table

    try:
        rows = cost_table(compare_strategies(ledgers, baseline))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    table = Table("strategy", "runs", "tokens", "FLOPs", "wall s", "device s", "env steps", "FLOPs ratio",
                  "device-s ratio")
    for row in rows:
        ratio = [f"{row[k]:.3f}" if row[k] is not None else "-" for k in ("flops_ratio", "device_s_ratio")]
        table.add_row(row["strategy"], str(row["runs"]), f"{row['tokens']:.0f}", f"{row['flops']:.3e}",
                      f"{row['wall_s']:.1f}", f"{row['device_s']:.1f}", f"{row['env_steps']:.0f}", *ratio)
    console.print(table)
