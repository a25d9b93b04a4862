"""Task lists and episode plans: which tasks a rollout plays, how often, and with which seeds.

A :class:`TaskSource` per environment knows the tasks of a split (as reset options with a stable
id), the task text in a reset's info, and what counts as success. :func:`plan_episodes` turns a
task list into episodes: ``samples`` episodes per task (a GRPO group) with distinct, reproducible
seeds and stable ids, so an interrupted run resumes without redoing finished episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from typing import Any

from agents.policy import derive_seed
from environments.alfworld.games import TASK_TYPES, GameCatalogue
from environments.webshop.splits import goal_indices


@dataclass(frozen=True)
class Task:
    """One task: a stable id and the reset options that start it."""

    task_id: str
    reset_options: Mapping[str, Any]
    split: str = ""


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: ``sample`` of ``samples`` on ``task``; ``id`` is the trajectory id."""

    id: str
    task: Task
    seed: int
    sample: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSource:
    env: str
    tasks: Callable[[str], list[Task]]  # split -> its tasks, in a fixed order
    task_text: Callable[[str, Mapping[str, Any]], str]  # (first observation, reset info) -> task
    success: Callable[[float, Mapping[str, Any]], bool]  # (episode reward, last info) -> success
    splits: tuple[str, ...] = ()


def _webshop_tasks(split: str) -> list[Task]:
    return [Task(f"goal-{i}", {"goal_index": i}, split) for i in goal_indices(split)]


def _alfworld_tasks(split: str) -> list[Task]:
    """The split's games with the six task types interleaved (each type in id order), so that its
    first N tasks, which a small evaluation or training slice plays, cover the types evenly instead
    of being all ``look_at_obj_in_light``."""
    catalogue = GameCatalogue.from_data()
    by_type = [catalogue.games(split, task_type) for task_type in TASK_TYPES]
    interleaved = (game for game in chain.from_iterable(zip_longest(*by_type)) if game is not None)
    return [Task(game.id, {"game": game.id}, split) for game in interleaved]


TASK_SOURCES: dict[str, TaskSource] = {
    source.env: source
    for source in (
        TaskSource(
            "webshop",
            _webshop_tasks,
            task_text=lambda observation, info: str((info.get("goal") or {}).get("instruction") or observation),
            success=lambda reward, info: reward >= 1.0,
            splits=("train", "dev", "test", "community_test", "all"),
        ),
        TaskSource(
            "alfworld",
            _alfworld_tasks,
            task_text=lambda observation, info: str(info.get("task") or observation),
            success=lambda reward, info: bool(info.get("won", reward >= 1.0)),
            splits=("valid_seen", "valid_unseen", "valid_train", "train"),
        ),
    )
}


def task_source(env: str) -> TaskSource:
    if env not in TASK_SOURCES:
        raise ValueError(f"no task list for environment {env!r}; known: {', '.join(sorted(TASK_SOURCES))}")
    return TASK_SOURCES[env]


def split_tasks(env: str, split: str, limit: int | None = None, offset: int = 0) -> list[Task]:
    """The first ``limit`` tasks of ``split`` after ``offset`` (all of them when ``limit`` is None)."""
    source = task_source(env)
    if source.splits and split not in source.splits:
        raise ValueError(f"unknown {env} split {split!r}; choose one of {', '.join(source.splits)}")
    if offset < 0 or (limit is not None and limit < 1):
        raise ValueError("offset must be >= 0 and limit >= 1")
    tasks = source.tasks(split)[offset:]
    return tasks if limit is None else tasks[:limit]


def plan_episodes(env: str, tasks: Sequence[Task], source: str, samples: int = 1, seed: int = 0) -> list[EpisodeSpec]:
    """``samples`` episodes per task, seeds distinct per (task, sample) and reproducible from ``seed``.

    Ids are ``{env}/{source}/{task_id}/s{sample}``; the order is task-major, so a group's samples run
    side by side in the rollout engine.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    ids = [task.task_id for task in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("task ids must be unique")
    return [
        EpisodeSpec(
            id=f"{env}/{source}/{task.task_id}/s{k}",
            task=task,
            seed=derive_seed(seed, env, task.task_id, k),
            sample=k,
        )
        for task in tasks
        for k in range(samples)
    ]
