"""``harness rollout``: play a split's tasks with a policy, print success and score, write trajectories."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from harness.commands.env import parse_options

if TYPE_CHECKING:
    from harness.distributed import RayEnvProviders

console = Console()
log = logging.getLogger(__name__)


def connect_ray(address: str, workers: int | None) -> RayEnvProviders:
    """[scale-out] A command's one Ray connection and its environment actors (``RayEnvProviders``).

    Shared by ``harness rollout`` and ``harness eval``: an unreachable cluster is a usage error of ``--ray``.
    """
    from harness.distributed import RayEnvProviders, RayUnavailableError

    try:
        return RayEnvProviders(address, workers=workers)
    except RayUnavailableError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ray") from None


def _ray_envs(address: str | None, workers: int | None, config: Any) -> RayEnvProviders | None:
    """[scale-out] The Ray environment providers for ``--ray`` (None without it)."""
    if address is None:
        return None
    if config.server_url is not None:
        raise typer.BadParameter("give --ray or --server-url, not both", param_hint="--ray")
    return connect_ray(address, workers)


def rollout(
    env: str = typer.Option(..., "--env", "-e", help="Environment (see `harness env list`)."),
    policy: str = typer.Option(..., "--policy", "-p", help="Policy (see `harness models policies`)."),
    option: list[str] = typer.Option([], "--option", "-o",
                                     help="Policy option KEY=VALUE, repeatable (e.g. -o model=smollm2)."),
    split: str = typer.Option(None, help="Task split (default: the environment's default_eval_split, e.g. "
                                          "test for WebShop, valid_unseen for ALFWorld)."),
    num_tasks: int = typer.Option(10, "--num-tasks", "-n", min=1, help="Tasks to play from the split."),
    offset: int = typer.Option(0, min=0, help="Skip this many tasks of the split first."),
    samples: int = typer.Option(1, "--samples", "-k", min=1, help="Episodes per task (a GRPO group)."),
    seed: int = typer.Option(0, help="Seed of the episode seeds."),
    server_url: str = typer.Option(None, help="Environment server URL (default: in-process)."),
    max_steps: int = typer.Option(None, min=1, help="Step cap (default: the environment's)."),
    concurrency: int = typer.Option(16, min=1, help="Episodes played at once (one batched policy call)."),
    out: Path = typer.Option(None, help="Trajectory file (JSON Lines); default runs/rollouts/ENV-POLICY-SPLIT.jsonl. "
                                        "Episodes already in it are skipped (resume)."),
    record_tokens: bool = typer.Option(True, help="Store generated token ids and log-probabilities per step."),
    env_option: list[str] = typer.Option([], "--env-option", help="Environment option KEY=VALUE (repeatable)."),
    # [scale-out] Ray flags (harness.distributed)
    ray: str = typer.Option(None, "--ray", help="Ray cluster address (HOST:PORT, auto, or local): environment "
                                               "sessions run as actors spread over its nodes."),
    ray_workers: int = typer.Option(None, "--ray-workers", min=1,
                                    help="Environment actors on the Ray cluster (default: one per CPU)."),
) -> None:
    """Roll out a policy on an environment's tasks: prints success / score and writes the trajectories."""
    from agents.registry import UnknownPolicyError, make_policy
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.tasks import plan_episodes, split_tasks
    from environments.core.registry import UnknownEnvError, get_env_spec
    from environments.core.trajectory import TrajectoryWriter

    try:
        split = split or get_env_spec(env).default_eval_split
        tasks = split_tasks(env, split, limit=num_tasks, offset=offset)
    except (UnknownEnvError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if not tasks:
        raise typer.BadParameter(f"split {split!r} has no tasks after offset {offset}")
    try:
        agent = make_policy(policy, **parse_options(option, "--option"))
    except (UnknownPolicyError, ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy/--option") from None
    try:
        config = RolloutConfig(env=env, server_url=server_url, max_steps=max_steps, concurrency=concurrency,
                               record_tokens=record_tokens, env_options=parse_options(env_option, "--env-option"))
        ray_envs = _ray_envs(ray, ray_workers, config)  # [scale-out]
        provider = ray_envs.provider(config.env, config.max_steps, config.env_options) if ray_envs else None
        engine = RolloutEngine(agent, config, make_env=provider)
    except (UnknownEnvError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    out = out or Path("runs") / "rollouts" / f"{env}-{policy}-{split}.jsonl"
    episodes = plan_episodes(env, tasks, engine.source, samples=samples, seed=seed)
    try:
        with TrajectoryWriter(out) as writer:
            _, stats = engine.run(episodes, writer)
    finally:
        agent.close()
        if ray_envs is not None:  # [scale-out]
            ray_envs.close()
    console.print(
        f"[bold]{env} {split}[/] {policy}: {stats.episodes} episodes ({stats.skipped} already done, "
        f"{stats.failed} failed), success {stats.success_rate:.1%}, score {100 * stats.mean_reward:.1f}, "
        f"{stats.steps} steps, {stats.generated_tokens} generated tokens, {stats.parse_failures} unparseable "
        f"replies, {60 * stats.episodes_per_s:.1f} episodes/min, {stats.tokens_per_s:.1f} tokens/s",
        soft_wrap=True,
    )
    console.print(f"trajectories: {out}", soft_wrap=True)
    if stats.failed:
        raise typer.Exit(code=1)
