"""``harness routers``: list the installed routing strategies (built-ins and plugins) and run one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.commands.env import parse_options
from harness.commands.plugins import show_entries

app = typer.Typer(help="Routing strategies (plugins): which trajectories to imitate (SFT), which tasks to "
                  "explore (RL).", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


@app.command("list")
def list_routers(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False
                 ) -> None:
    """Show every installed router: name, what it needs, where it comes from (a broken plugin with its error)."""
    from prism_train.routers import REGISTRY

    show_entries(console, REGISTRY.entries(), lambda router: {"requires": sorted(router.requires),
                                                              "description": router.description},
                 ["requires", "description"], as_json)


@app.command("run")
def run_router(
    name: Annotated[str, typer.Argument(help="Router name (see `harness routers list`).")],
    trajectories: Annotated[Path, typer.Option("--trajectories", "-t", exists=True, dir_okay=False,
                                               help="Expert trajectories (JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the decision (JSONL).")],
    scores: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                help="Probe scores (from `harness probe`) for score routers.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for random splits and tie-breaking.")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", help="Router option KEY=VALUE (e.g. k=4).")] = None,
    model: Annotated[str | None, typer.Option(help="Current policy, for routers that watch it (difficulty).")] = None,
    prompt_style: Annotated[str, typer.Option(help="Prompt style of that policy.")] = "react",
    max_new_tokens: Annotated[int, typer.Option(help="Generation budget per action of that policy.")] = 48,
    max_steps: Annotated[int | None, typer.Option(help="Episode step cap of its rollouts.")] = None,
    ledger: Annotated[Path | None, typer.Option(help="Append the rollouts' compute to this ledger.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy recorded in the ledger (default: NAME).")] = None,
) -> None:
    """Split expert trajectories into an SFT set and an RL task set with one router."""
    from environments.core.trajectory import read_trajectories
    from prism_train.ledger import Ledger
    from prism_train.routers import RouterError, RoutingRequest, UnknownRouterError, route, tasks_of, write_decision
    from prism_train.scores import read_scores

    trajs = list(read_trajectories(trajectories))
    rollout = None
    if model:
        rollout = _rollout_callback(model, trajs, prompt_style, max_new_tokens, max_steps,
                                    Ledger(ledger, strategy or name), out.parent)
    try:
        request = RoutingRequest(trajs, read_scores(scores) if scores else {}, tasks_of(trajs), seed, rollout)
        decision = route(name, request, **parse_options(option or []))
    except (RouterError, UnknownRouterError, ValueError) as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None
    write_decision(out, decision)
    console.print(f"{name}: {len(decision.sft)} trajectories to SFT, {len(decision.rl)} tasks to RL, "
                  f"{len(decision.excluded)} excluded -> {out}")


def _rollout_callback(model: str, trajs, prompt_style: str, max_new_tokens: int, max_steps: int | None, ledger,
                      output_dir: Path):
    from agents.backends.hf import TransformersBackend
    from agents.lm_policy import LMPolicy
    from agents.models import resolve_model
    from agents.policy import SamplingParams
    from prism_train.flops import ModelShape
    from prism_train.rl import rollout_callback

    envs = sorted({t.env for t in trajs})
    if len(envs) != 1:
        raise typer.BadParameter(f"rollouts need trajectories of one environment, got {envs}", param_hint="--model")
    backend = TransformersBackend(resolve_model(model))
    policy = LMPolicy(backend, SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0), prompt_style)
    return rollout_callback(policy, envs[0], ledger=ledger, output_dir=output_dir,
                            shape=ModelShape.from_config(backend.model.config), max_steps=max_steps)
