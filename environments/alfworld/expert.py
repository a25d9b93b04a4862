"""The ALFWorld expert (each game's stored walkthrough) and the expert trajectory recorder.

alfworld's hand-coded TextWorld expert is broken on the json_2.1.1 files (it looks for "put" where
the files say "move"), so the ground truth is the ``walkthrough`` stored in every game file, which
wins all 274 validation games. The expert plays through the Gymnasium interface, in-process or
against a server, and only reads the game id from the reset info.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from environments.alfworld.games import Game, GameCatalogue
from environments.alfworld.gym_env import DEFAULT_MAX_STEPS, ALFWorldEnv
from environments.alfworld.session import ALFWorldFactory
from environments.core.engine import JSONDict
from environments.core.trajectory import Step, Trajectory, TrajectoryWriter

log = logging.getLogger(__name__)


class WalkthroughExpert:
    """Oracle policy: ``begin(reset_info)`` once per episode, then ``act(observation, info)`` per step.

    ``act`` returns the walkthrough's next action, or ``None`` once the walkthrough is used up.
    """

    def __init__(
        self, data_dir: str | os.PathLike[str] | None = None, catalogue: GameCatalogue | None = None
    ) -> None:
        self._catalogue = catalogue or GameCatalogue.from_data(data_dir)
        self.current_plan: list[str] = []
        self._next = 0

    def describe(self) -> JSONDict:
        return {"name": "alfworld-walkthrough"}

    def plan(self, game_id: str) -> list[str]:
        """The stored walkthrough of a game."""
        return self._catalogue.get(game_id).walkthrough()

    def begin(self, info: Mapping[str, Any]) -> None:
        if not info.get("game"):
            raise ValueError("the ALFWorld expert needs the reset info's 'game' id")
        self.current_plan = self.plan(str(info["game"]))
        self._next = 0

    def act(self, observation: str, info: Mapping[str, Any]) -> str | None:
        if self._next >= len(self.current_plan):
            return None
        self._next += 1
        return self.current_plan[self._next - 1]


def trajectory_id(game: Game) -> str:
    return f"alfworld/expert/{game.split}/{game.name}"


def play_expert_episode(env: ALFWorldEnv, game: Game, expert: WalkthroughExpert) -> Trajectory:
    """One expert episode on ``game`` through the Gymnasium interface, as a trajectory record.

    ``steps[i].info`` holds the admissible commands the expert saw with ``steps[i].observation``
    and the engine's verdict on the action.
    """
    observation, info = env.reset(options={"game": game.id})
    expert.begin(info)
    steps: list[Step] = []
    last_info: Mapping[str, Any] = info
    terminated = truncated = False
    while not (terminated or truncated):
        action = expert.act(observation, last_info)
        if action is None:
            break
        next_observation, reward, terminated, truncated, step_info = env.step(action)
        steps.append(
            Step(
                observation=observation,
                action=action,
                reward=float(reward),
                terminated=terminated,
                info={
                    "available_actions": last_info["available_actions"],
                    "action_valid": step_info["action_valid"],
                },
            )
        )
        observation, last_info = next_observation, step_info
    return Trajectory(
        id=trajectory_id(game),
        env="alfworld",
        task_id=game.id,
        task=str(info["task"]),
        source="expert",
        steps=steps,
        final_observation=observation,
        reward=sum(step.reward for step in steps),
        success=bool(last_info["won"]),
        truncated=truncated,
        split=game.split,
        metadata={
            "task_type": game.task_type,
            "game_dialect": info["game_dialect"],
            "walkthrough_length": len(expert.current_plan),
            "expert": expert.describe(),
        },
    )


def record_expert_trajectories(
    split: str,
    n: int | None = None,
    *,
    out_path: str | os.PathLike[str],
    games: Sequence[str] | None = None,
    task_type: str | None = None,
    server_url: str | None = None,
    concurrency: int = 2,
    max_steps: int = DEFAULT_MAX_STEPS,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **factory_options: Any,
) -> JSONDict:
    """Play the walkthroughs of a split's games and append one trajectory per game to ``out_path``.

    The games are ``games`` (ids, all in ``split``) or the split's games in id order (optionally one
    ``task_type``), the first ``n`` of them. ``concurrency`` episodes run at once, each on its own
    session: on the server at ``server_url``, or on an in-process factory with that many workers
    (``factory_options`` go to it). Ids already in the file are skipped, so an interrupted run
    resumes. Returns a summary of this call's episodes.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    catalogue = GameCatalogue.from_data(data_dir)
    chosen = _choose_games(catalogue, split, games, task_type)[:n]
    started = time.perf_counter()
    outcomes: list[Trajectory] = []
    with TrajectoryWriter(out_path) as writer:
        todo = [game for game in chosen if trajectory_id(game) not in writer.done_ids]
        with _env_maker(server_url, concurrency, max_steps, data_dir, factory_options) as make_env:
            with _progress_bar(progress, len(todo)) as advance:
                for trajectory in _play_concurrently(todo, make_env, concurrency, catalogue):
                    writer.write(trajectory)
                    outcomes.append(trajectory)
                    advance(trajectory.success)
    elapsed = time.perf_counter() - started
    failures = [t.task_id for t in outcomes if not t.success]
    summary = {
        "out_path": str(out_path),
        "games": len(chosen),
        "skipped": len(chosen) - len(todo),
        "recorded": len(outcomes),
        "successes": len(outcomes) - len(failures),
        "success_rate": (len(outcomes) - len(failures)) / len(outcomes) if outcomes else None,
        "failures": failures,
        "elapsed_s": elapsed,
        "episodes_per_min": 60 * len(outcomes) / elapsed if elapsed > 0 else None,
    }
    log.info(
        "expert: %d recorded, %d skipped, %d failed, %.1f s", len(outcomes), summary["skipped"], len(failures), elapsed
    )
    return summary


def _choose_games(
    catalogue: GameCatalogue, split: str, games: Sequence[str] | None, task_type: str | None
) -> list[Game]:
    if games is None:
        return catalogue.games(split, task_type)
    chosen = [catalogue.get(game_id) for game_id in dict.fromkeys(games)]
    outside = [game.id for game in chosen if game.split != split or (task_type and game.task_type != task_type)]
    if outside:
        kind = f" of type {task_type!r}" if task_type else ""
        raise ValueError(f"games {outside[:5]} are not in split {split!r}{kind}")
    return chosen


@contextmanager
def _env_maker(
    server_url: str | None,
    concurrency: int,
    max_steps: int,
    data_dir: str | os.PathLike[str] | None,
    factory_options: dict[str, Any],
) -> Iterator[Callable[[], ALFWorldEnv]]:
    """Yields a function that opens one more env: remote, or on one shared in-process factory."""
    if server_url is not None:
        if factory_options:
            raise ValueError(f"factory options {sorted(factory_options)} apply to in-process play only")
        yield lambda: ALFWorldEnv(server_url, max_steps=max_steps)
        return
    options = {"workers": concurrency, "max_steps": max_steps, **factory_options}
    if data_dir is not None:
        options["data_dir"] = str(data_dir)
    factory = ALFWorldFactory(**options)
    try:
        yield lambda: ALFWorldEnv(max_steps=max_steps, session=factory.new_session())
    finally:
        factory.close()


def _play_concurrently(
    games: Sequence[Game],
    make_env: Callable[[], ALFWorldEnv],
    concurrency: int,
    catalogue: GameCatalogue,
) -> Iterator[Trajectory]:
    """Yields each game's trajectory as it finishes; each thread keeps one env and one expert."""
    local = threading.local()
    opened: list[ALFWorldEnv] = []
    opened_lock = threading.Lock()

    def play(game: Game) -> Trajectory:
        if not hasattr(local, "env"):
            local.env = make_env()
            local.expert = WalkthroughExpert(catalogue=catalogue)
            with opened_lock:
                opened.append(local.env)
        return play_expert_episode(local.env, game, local.expert)

    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="alfworld-expert")
    try:
        pending: set[Future[Trajectory]] = {executor.submit(play, game) for game in games}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        for env in opened:
            env.close()


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[bool], None]]:
    """Yields ``advance(success)``; a rich bar when enabled, else a no-op."""
    if not enabled:
        yield lambda success: None
        return

    counts = {"done": 0, "won": 0}
    columns = (
        TextColumn("[bold]alfworld expert[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("won {task.fields[won]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("expert", total=total, won="-")

        def advance(success: bool) -> None:
            counts["done"] += 1
            counts["won"] += int(success)
            bar.update(task, advance=1, won=f"{counts['won']}/{counts['done']}")

        yield advance
