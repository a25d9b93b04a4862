"""Scripted policies: the environments' experts and a random-admissible-action baseline.

They answer through the same :class:`~agents.policy.Policy` interface as the language models, so the
rollout engine, trajectory files and evaluation treat all of them alike (expert demonstrations for SFT
come out in the same format as model rollouts).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from agents.policy import ActionSample, AgentTurn, Policy, derive_seed
from environments.core.registry import get_env_spec


class ExpertPolicy(Policy):
    """Each environment's own scripted expert (``EnvSpec.make_expert``), one instance per episode.

    Experts follow the environments' protocol: ``begin(reset_info)`` once, then
    ``act(observation, info)`` per step, returning ``None`` when they give up.
    """

    name = "expert"

    def __init__(self, **expert_options: Any) -> None:
        self.expert_options = expert_options
        self._experts: dict[str, Any] = {}

    def start_episode(self, episode_id: str, env: str, observation: str, info: dict[str, Any]) -> None:
        spec = get_env_spec(env)
        if spec.make_expert is None:
            raise ValueError(f"environment {env!r} has no scripted expert")
        expert = spec.make_expert(**self.expert_options)
        expert.begin(info)
        self._experts[episode_id] = expert

    def end_episode(self, episode_id: str) -> None:
        self._experts.pop(episode_id, None)

    def act(self, turns: Sequence[AgentTurn], n: int = 1) -> list[list[ActionSample]]:
        answers = []
        for turn in turns:
            if turn.episode_id not in self._experts:
                raise RuntimeError(f"episode {turn.episode_id!r} was not started (call start_episode first)")
            action = self._experts[turn.episode_id].act(turn.observation, turn.info)
            answers.append([ActionSample(action=action, output=action or "") for _ in range(n)])
        return answers

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "expert_options": self.expert_options}


class RandomPolicy(Policy):
    """Uniformly random among the actions available at each step (WebShop searches use the task text).

    Draws are seeded by the turn's seed, so a rollout is reproducible however episodes are batched.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def act(self, turns: Sequence[AgentTurn], n: int = 1) -> list[list[ActionSample]]:
        answers = []
        for turn in turns:
            choices = get_env_spec(turn.env).env_prompt().concrete_actions(turn.available_actions, turn.task)
            samples = []
            for k in range(n):
                rng = random.Random(derive_seed(self.seed, turn.seed if turn.seed is not None else turn.episode_id,
                                                turn.step, k))
                action = rng.choice(choices) if choices else None
                samples.append(ActionSample(action=action, output=action or ""))
            answers.append(samples)
        return answers

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "seed": self.seed}
