"""Task lists and episode plans: which tasks a rollout plays, how often, and with which seeds.

Each environment's spec (``EnvSpec.tasks``) lists the tasks of a split (as reset options with a stable
id); :func:`split_tasks` slices such a list. :func:`plan_episodes` turns a task list into episodes:
``samples`` episodes per task (a GRPO group) with distinct, reproducible seeds and stable ids, so an
interrupted run resumes without redoing finished episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.policy import derive_seed
from environments.core.registry import get_env_spec
from environments.core.spec import Task

__all__ = ["EpisodeSpec", "Task", "plan_episodes", "split_tasks"]


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: ``sample`` of ``samples`` on ``task``; ``id`` is the trajectory id."""

    id: str
    task: Task
    seed: int
    sample: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


def split_tasks(env: str, split: str, limit: int | None = None, offset: int = 0) -> list[Task]:
    """The first ``limit`` tasks of ``split`` after ``offset`` (all of them when ``limit`` is None)."""
    if offset < 0 or (limit is not None and limit < 1):
        raise ValueError("offset must be >= 0 and limit >= 1")
    tasks = get_env_spec(env).split_tasks(split)[offset:]
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
