"""The rollout engine: many episodes at once, one batched policy call per step of all of them.

The loop is a lock-step over ``concurrency`` environment sessions:

1. start episodes in free sessions (reset),
2. gather every episode that waits for an action and ask the policy for all of them in **one** call,
3. step all those environments (in a thread pool when they play in other processes),
4. write finished episodes as trajectories (the shared JSON Lines format) and refill their sessions.

Peers run one episode at a time (AgentGym) and pay a forward pass per action; here a step of 16
episodes costs about one batched forward pass. Trajectories carry per-step token counts, the model's
raw output, parse errors, generated token ids and log-probabilities (for RL) and timings; a run whose
writer already holds some episode ids skips them, which is how interrupted runs resume.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents.local_envs import InProcessEnvs
from agents.policy import ActionSample, AgentTurn, HistoryItem, Policy, derive_seed
from agents.tasks import EpisodeSpec
from environments.core.registry import get_env_spec
from environments.core.trajectory import Step, Trajectory, TrajectoryWriter

log = logging.getLogger(__name__)

RESET_INFO_DROP = ("available_actions",)
# What the engine records of the machine's speed, per step (``Step.info``) and per episode (``metadata``):
# the only fields of a trajectory that differ between two plays of the same episodes.
TIMING_FIELDS = ("policy_time_s", "env_time_s", "wall_time_s")


@dataclass
class RolloutConfig:
    """How to run: which environment (in-process or ``server_url``), how many at once, what to record."""

    env: str
    server_url: str | None = None
    max_steps: int | None = None  # default: the environment's own cap
    concurrency: int = 16
    env_threads: int = 8
    record_tokens: bool = True
    source: str | None = None  # trajectory ``source``; default: the policy's name
    env_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.env_threads < 1:
            raise ValueError("concurrency and env_threads must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")


@dataclass
class RolloutStats:
    """What a run did; rates are per second of wall time."""

    episodes: int = 0
    skipped: int = 0  # already in the trajectory file (resumed)
    failed: int = 0  # environment errors; not written, so a rerun retries them
    successes: int = 0
    reward_sum: float = 0.0
    steps: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    parse_failures: int = 0
    policy_calls: int = 0
    policy_s: float = 0.0
    env_s: float = 0.0
    wall_s: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.episodes if self.episodes else 0.0

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_s if self.wall_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items()},
            "success_rate": self.success_rate,
            "mean_reward": self.mean_reward,
            "episodes_per_min": 60 * self.episodes_per_s,
            "generated_tokens_per_s": self.tokens_per_s,
        }


@dataclass
class _Episode:
    """One running episode and its session."""

    spec: EpisodeSpec
    slot: int
    observation: str
    info: dict[str, Any]
    task: str
    reset_info: dict[str, Any]
    started: float
    steps: list[Step] = field(default_factory=list)
    history: list[HistoryItem] = field(default_factory=list)
    reward: float = 0.0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    parse_failures: int = 0
    policy_s: float = 0.0
    env_s: float = 0.0
    last_policy_s: float = 0.0  # the batched call that chose the latest action


class RolloutEngine:
    """Plays episodes with a policy over a pool of environment sessions; see the module docstring."""

    def __init__(self, policy: Policy, config: RolloutConfig,
                 make_env: Callable[[], Any] | None = None) -> None:
        self.policy = policy
        self.config = config
        self.spec = get_env_spec(config.env)
        self.max_steps = config.max_steps or self.spec.default_max_steps
        self._given_make_env = make_env
        self.source = config.source or policy.name

    def _own_make_env(self) -> Callable[[], Any]:
        """Sessions on the configured server, or in-process on one engine factory for this run (closed after
        it; pass a longer-lived ``make_env``, e.g. ``agents.local_envs.InProcessEnvProviders``', to share one)."""
        if self.config.server_url is None:
            return InProcessEnvs(self.config.env, self.max_steps, self.config.env_options)

        def remote_env() -> Any:
            return self.spec.make_gym(self.max_steps, server_url=self.config.server_url, **self.config.env_options)

        return remote_env

    def run(self, episodes: Sequence[EpisodeSpec], writer: TrajectoryWriter | None = None,
            on_finish: Callable[[Trajectory], None] | None = None) -> tuple[list[Trajectory], RolloutStats]:
        """Play ``episodes`` (skipping ids the writer already holds); returns new trajectories and stats.
        ``on_finish`` sees each trajectory as it is written (a caller's own progress display)."""
        ids = [episode.id for episode in episodes]
        if len(set(ids)) != len(ids):
            raise ValueError("episode ids must be unique (use plan_episodes)")
        stats = RolloutStats()
        done = writer.done_ids if writer is not None else set()
        pending = deque(episode for episode in episodes if episode.id not in done)
        stats.skipped = len(episodes) - len(pending)
        if stats.skipped:
            log.info("resuming: %d of %d episodes are already in %s", stats.skipped, len(episodes), writer.path)
        trajectories: list[Trajectory] = []
        if not pending:
            return trajectories, stats
        started = time.perf_counter()
        make_env = self._given_make_env or self._own_make_env()
        envs: list[Any] = []
        try:
            envs += [make_env() for _ in range(min(self.config.concurrency, len(pending)))]
        except BaseException:
            self._close(envs, make_env)
            raise
        # A make_env whose environments play in other processes says so (remote = True, e.g. the Ray and
        # server-pool providers of harness.distributed): their calls are then stepped from the thread pool.
        remote = self.config.server_url is not None or bool(getattr(make_env, "remote", False))
        pool = ThreadPoolExecutor(self.config.env_threads, thread_name_prefix="env") if remote else None
        running: list[_Episode | None] = [None] * len(envs)
        try:
            with self._progress(len(pending)) as advance:
                while pending or any(running):
                    self._start(pending, running, envs, pool, stats)
                    active = [episode for episode in running if episode is not None]
                    if not active:
                        continue
                    answers = self._act(active, stats)
                    for episode, trajectory in self._step(active, answers, envs, pool, stats):
                        running[episode.slot] = None
                        self.policy.end_episode(episode.spec.id)
                        if trajectory is not None:
                            if writer is not None:
                                writer.write(trajectory)
                            trajectories.append(trajectory)
                            if on_finish is not None:
                                on_finish(trajectory)
                        stats.wall_s = time.perf_counter() - started
                        advance(stats)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            self._close(envs, make_env)
        stats.wall_s = time.perf_counter() - started
        return trajectories, stats

    def _close(self, envs: Sequence[Any], make_env: Callable[[], Any]) -> None:
        """Close the sessions, and the engine factory when this run made it."""
        for env in envs:
            env.close()
        if make_env is not self._given_make_env and isinstance(make_env, InProcessEnvs):
            make_env.close()

    # -- the three phases ---------------------------------------------------------------------------
    def _start(self, pending: deque[EpisodeSpec], running: list[_Episode | None], envs, pool, stats) -> None:
        free = [slot for slot, episode in enumerate(running) if episode is None]
        starts = [(slot, pending.popleft()) for slot in free if pending]
        if not starts:
            return

        def reset(item: tuple[int, EpisodeSpec]):
            slot, spec = item
            began = time.perf_counter()
            observation, info = envs[slot].reset(seed=spec.seed, options=dict(spec.task.reset_options))
            return observation, info, time.perf_counter() - began

        for (slot, spec), result in zip(starts, self._map(reset, starts, pool), strict=True):
            if isinstance(result, Exception):
                log.error("episode %s: reset failed: %s", spec.id, result)
                stats.failed += 1
                continue
            observation, info, seconds = result
            episode = _Episode(
                spec=spec, slot=slot, observation=observation, info=info,
                task=self.spec.task_text(observation, info),
                reset_info={k: v for k, v in info.items() if k not in RESET_INFO_DROP},
                started=time.perf_counter(), env_s=seconds,
            )
            self.policy.start_episode(spec.id, self.config.env, observation, info)
            running[slot] = episode

    def _act(self, active: list[_Episode], stats: RolloutStats) -> list[ActionSample]:
        turns = [
            AgentTurn(
                episode_id=episode.spec.id, env=self.config.env, task=episode.task,
                observation=episode.observation, available_actions=episode.info.get("available_actions"),
                history=episode.history, seed=derive_seed(episode.spec.seed, len(episode.steps)), info=episode.info,
            )
            for episode in active
        ]
        began = time.perf_counter()
        answers = self.policy.act(turns, n=1)
        seconds = time.perf_counter() - began
        stats.policy_calls += 1
        stats.policy_s += seconds
        for episode in active:
            episode.policy_s += seconds / len(active)
            episode.last_policy_s = seconds
        return [samples[0] for samples in answers]

    def _step(self, active: list[_Episode], answers: list[ActionSample], envs, pool,
              stats: RolloutStats) -> Iterator[tuple[_Episode, Trajectory | None]]:
        acting = [(episode, answer) for episode, answer in zip(active, answers, strict=True)
                  if answer.action is not None]
        for episode, answer in zip(active, answers, strict=True):
            if answer.action is None:  # the policy gave up (a scripted expert out of plans)
                yield episode, self._finish(episode, truncated=True, gave_up=True, stats=stats)

        def step(item: tuple[_Episode, ActionSample]):
            episode, answer = item
            began = time.perf_counter()
            result = envs[episode.slot].step(answer.action)
            return result, time.perf_counter() - began

        batch = len(active)
        for (episode, answer), result in zip(acting, self._map(step, acting, pool), strict=True):
            if isinstance(result, Exception):
                log.error("episode %s: step failed: %s", episode.spec.id, result)
                stats.failed += 1
                yield episode, None
                continue
            (observation, reward, terminated, truncated, info), seconds = result
            episode.env_s += seconds
            episode.steps.append(Step(
                observation=episode.observation, action=answer.action, reward=float(reward),
                terminated=bool(terminated), info=self._step_info(episode, answer, info, seconds, batch),
            ))
            episode.history.append(HistoryItem(episode.observation, answer.action, answer.output))
            episode.reward += float(reward)
            episode.prompt_tokens += answer.prompt_tokens or 0
            episode.generated_tokens += answer.generated_tokens
            episode.parse_failures += answer.parse_error is not None
            episode.observation, episode.info = observation, info
            if terminated or truncated:
                yield episode, self._finish(episode, truncated=bool(truncated) and not terminated, gave_up=False,
                                            stats=stats)

    # -- records ------------------------------------------------------------------------------------
    def _step_info(self, episode: _Episode, answer: ActionSample, info: dict[str, Any], env_s: float,
                   batch: int) -> dict[str, Any]:
        record: dict[str, Any] = {
            "available_actions": episode.info.get("available_actions"),
            "action_valid": info.get("action_valid"),
            "output": answer.output,
            "prompt_tokens": answer.prompt_tokens,
            "generated_tokens": answer.generated_tokens,
            "finish_reason": answer.finish_reason,
            "batch_size": batch,
            "policy_time_s": episode.last_policy_s,
            "env_time_s": env_s,
        }
        if answer.thought is not None:
            record["thought"] = answer.thought
        if answer.parse_error is not None:
            record["parse_error"] = answer.parse_error
        if answer.grounded_from is not None:
            record["grounded_from"] = answer.grounded_from
        if self.config.record_tokens and answer.token_ids is not None:
            record["token_ids"] = answer.token_ids
            record["logprobs"] = answer.logprobs
        return record

    def _finish(self, episode: _Episode, truncated: bool, gave_up: bool, stats: RolloutStats) -> Trajectory:
        success = self.spec.success(episode.reward, episode.info)
        final_info = {k: v for k, v in episode.info.items() if k not in RESET_INFO_DROP}
        trajectory = Trajectory(
            id=episode.spec.id, env=self.config.env, task_id=episode.spec.task.task_id, task=episode.task,
            source=self.source, steps=episode.steps, final_observation=episode.observation,
            reward=episode.reward, success=success, truncated=truncated, split=episode.spec.task.split,
            seed=episode.spec.seed,
            metadata={
                "group": episode.spec.task.task_id,
                "sample": episode.spec.sample,
                "reset_options": dict(episode.spec.task.reset_options),
                "reset_info": episode.reset_info,
                "final_info": final_info,
                "policy": self.policy.describe(),
                "max_steps": self.max_steps,
                "gave_up": gave_up,
                "parse_failures": episode.parse_failures,
                "prompt_tokens": episode.prompt_tokens,
                "generated_tokens": episode.generated_tokens,
                "policy_time_s": episode.policy_s,  # its share of the batched calls
                "env_time_s": episode.env_s,
                "wall_time_s": time.perf_counter() - episode.started,
                **dict(episode.spec.metadata),
            },
        )
        stats.episodes += 1
        stats.successes += success
        stats.reward_sum += episode.reward
        stats.steps += len(episode.steps)
        stats.prompt_tokens += episode.prompt_tokens
        stats.generated_tokens += episode.generated_tokens
        stats.parse_failures += episode.parse_failures
        stats.env_s += episode.env_s
        return trajectory

    # -- plumbing -----------------------------------------------------------------------------------
    @staticmethod
    def _map(fn: Callable[[Any], Any], items: Sequence[Any], pool: ThreadPoolExecutor | None) -> list[Any]:
        """``fn`` over ``items`` (in the pool when there is one); an exception becomes that item's result."""
        def guarded(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:  # noqa: BLE001 - one failing session must not stop the others
                return exc

        return list(pool.map(guarded, items)) if pool is not None else [guarded(item) for item in items]

    @contextmanager
    def _progress(self, total: int) -> Iterator[Callable[[RolloutStats], None]]:
        if not self.config.progress:
            yield lambda stats: None
            return

        progress = Progress(
            TextColumn(f"[bold]{self.config.env}[/] {self.source}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rates]}"), TimeElapsedColumn(), transient=False,
        )
        task = progress.add_task("rollout", total=total, rates="")

        def advance(stats: RolloutStats) -> None:
            rates = (f"{60 * stats.episodes_per_s:.1f} ep/min  {stats.tokens_per_s:.1f} tok/s  "
                     f"success {stats.success_rate:.0%}  reward {stats.mean_reward:.3f}")
            progress.update(task, completed=stats.episodes + stats.failed, rates=rates)

        with progress if total else nullcontext():
            yield advance
