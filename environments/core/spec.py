"""The whole contract between an environment and the harness: one :class:`EnvSpec` per environment.

Everything the harness does with an environment (host it, play it, script it, list its tasks, prompt a
model for it, decide success, find its data, score it on the leaderboard) comes from its spec, which a
plugin publishes under the ``harness.envs`` entry-point group; no other module keeps a table keyed by
environment names. ``docs/environments.md`` says how to write one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
from flask import Blueprint

from environments.core.engine import SessionFactory
from environments.core.prompt import EnvPrompt
from foundation.data import DataFile
from foundation.scoring import Scoring, generic_scoring


@dataclass(frozen=True)
class Task:
    """One task: a stable id and the reset options that start it."""

    task_id: str
    reset_options: Mapping[str, Any]
    split: str = ""


def reward_is_one(reward: float, info: Mapping[str, Any]) -> bool:
    """The default success rule: the episode earned the full reward of 1."""
    return reward >= 1.0


def observation_text(observation: str, info: Mapping[str, Any]) -> str:
    """The default task text: the first observation."""
    return observation


class SpecError(ValueError):
    """An environment's spec lacks what is asked of it (no tasks, an unknown split, no prompt)."""


@dataclass(frozen=True)
class EnvSpec:
    """What the harness needs to know to host, play, script, prompt for and score an environment.

    Hosting: ``make_factory(**options)`` builds the engine (``factory_options`` documents the options);
    ``blueprints(factory)`` adds engine-specific web pages to its server; ``server_threads`` is its
    server's default number of request threads (few where requests are CPU-bound Python, more where they
    wait on something else). Playing: ``gym_entry_point`` (``"module:Class"``, taking ``max_steps``,
    ``server_url`` and, to share one engine, ``session``) is registered as ``gym_id`` with
    ``max_episode_steps = default_max_steps``. Scripting: ``make_expert(**options)`` returns the expert.
    Tasks: ``tasks(split)`` lists a split's tasks in a fixed order (``splits`` names them,
    ``default_eval_split`` is the one a rollout plays unless told); ``task_text(first observation, reset
    info)`` is the task as the agent is told it; ``success(episode reward, last info)`` decides success.
    Prompting: ``prompt`` (instructions, action listing and normalisation, a worked example). Data:
    ``data_files`` are the benchmark files it reads (see :mod:`foundation.data`). Scoring: ``scoring``,
    what the leaderboard reports (default: success rate, then mean reward).
    """

    name: str
    gym_id: str
    description: str
    make_factory: Callable[..., SessionFactory]
    default_max_steps: int
    gym_entry_point: str = ""
    splits: tuple[str, ...] = ()
    tasks: Callable[[str], Sequence[Task]] | None = None
    default_eval_split: str = ""
    task_text: Callable[[str, Mapping[str, Any]], str] = observation_text
    success: Callable[[float, Mapping[str, Any]], bool] = reward_is_one
    prompt: EnvPrompt | None = None
    scoring: Scoring | None = None
    data_files: tuple[DataFile, ...] = ()
    make_expert: Callable[..., Any] | None = None
    blueprints: Callable[[SessionFactory], Iterable[Blueprint]] = lambda factory: ()
    factory_options: Mapping[str, str] = field(default_factory=dict)
    server_threads: int = 16

    def __post_init__(self) -> None:
        if self.default_max_steps < 1:
            raise SpecError(f"environment {self.name!r}: default_max_steps must be at least 1")
        if self.default_eval_split and self.default_eval_split not in self.splits:
            raise SpecError(f"environment {self.name!r}: default_eval_split {self.default_eval_split!r} is not one "
                            f"of its splits {self.splits}")

    @property
    def report_scoring(self) -> Scoring:
        """How the leaderboard scores it: its own scoring, else the generic one."""
        return self.scoring or generic_scoring(self.name)

    def split_tasks(self, split: str) -> list[Task]:
        """The tasks of ``split`` in their fixed order; :class:`SpecError` for an unknown split or no tasks."""
        if self.tasks is None:
            raise SpecError(f"environment {self.name!r} declares no tasks (EnvSpec.tasks)")
        if self.splits and split not in self.splits:
            raise SpecError(f"unknown {self.name} split {split!r}; choose one of {', '.join(self.splits)}")
        return list(self.tasks(split))

    def env_prompt(self) -> EnvPrompt:
        if self.prompt is None:
            raise SpecError(f"environment {self.name!r} declares no prompt (EnvSpec.prompt), so no model can play it")
        return self.prompt

    def _declared_gym_entry_point(self) -> str:
        if not self.gym_entry_point:
            raise SpecError(f"environment {self.name!r} declares no Gymnasium class (EnvSpec.gym_entry_point)")
        return self.gym_entry_point

    def gym_class(self) -> type:
        """The Gymnasium environment class ``gym_entry_point`` names, imported."""
        module, _, name = self._declared_gym_entry_point().partition(":")
        return getattr(importlib.import_module(module), name)

    def register_gym(self) -> None:
        """Register ``gym_id`` with Gymnasium, capped at ``default_max_steps`` (a no-op once registered)."""
        if self.gym_entry_point and self.gym_id not in gymnasium.registry:
            gymnasium.register(id=self.gym_id, entry_point=self.gym_entry_point,
                               max_episode_steps=self.default_max_steps,
                               kwargs={"max_steps": self.default_max_steps})

    def make_gym(self, max_steps: int | None = None, **kwargs: Any) -> gymnasium.Env:
        """``gymnasium.make`` of this environment with one step cap for the environment and Gymnasium's
        ``TimeLimit`` (``default_max_steps`` unless given); ``kwargs`` go to the environment."""
        cap = max_steps or self.default_max_steps
        self._declared_gym_entry_point()
        self.register_gym()
        return gymnasium.make(self.gym_id, max_episode_steps=cap, max_steps=cap, **kwargs)
