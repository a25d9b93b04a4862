"""A language model as an agent: a prompt format renders each turn, a backend generates, a parser reads
the reply back into an action (:class:`LMPolicy`).

Kept apart from :mod:`agents.policy` (the interface) because it needs the prompt formats, which
themselves build on the interface's turn types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents.policy import (
    ActionSample,
    AgentTurn,
    Generation,
    GenerationRequest,
    LMBackend,
    Policy,
    SamplingParams,
)
from agents.prompts import PromptFormat, get_prompt_format


class LMPolicy(Policy):
    """A language model as an agent: prompt format + backend + action parsing."""

    def __init__(self, backend: LMBackend, sampling: SamplingParams | None = None, prompt_style: str = "react",
                 few_shot: bool = True, history: int | None | str = "default", name: str | None = None,
                 grounding: str = "none") -> None:
        self.backend = backend
        self.sampling = sampling or SamplingParams()
        self.prompt_style = prompt_style
        self.few_shot = few_shot
        self.history = history
        self.grounding = grounding
        self.name = name or backend.kind
        self._formats: dict[str, PromptFormat] = {}
        self.calls = 0  # batched backend calls made, for tests and progress

    def prompt_format(self, env: str) -> PromptFormat:
        if env not in self._formats:
            self._formats[env] = get_prompt_format(env, self.prompt_style, few_shot=self.few_shot, history=self.history,
                                                  grounding=self.grounding)
        return self._formats[env]

    def act(self, turns: Sequence[AgentTurn], n: int = 1) -> list[list[ActionSample]]:
        if not turns:
            return []
        formats = [self.prompt_format(turn.env) for turn in turns]
        stops = tuple(dict.fromkeys(self.sampling.stop + tuple(s for f in formats for s in f.stop)))
        params = replace(self.sampling, n=n, stop=stops)
        requests = [GenerationRequest(fmt.messages(turn), seed=turn.seed)
                    for fmt, turn in zip(formats, turns, strict=True)]
        self.calls += 1
        generations = self.backend.generate(requests, params)
        answers: list[list[ActionSample]] = []
        for fmt, turn, samples in zip(formats, turns, generations, strict=True):
            answers.append([self._to_action(fmt, turn, gen) for gen in samples])
        return answers

    @staticmethod
    def _to_action(fmt: PromptFormat, turn: AgentTurn, gen: Generation) -> ActionSample:
        parsed = fmt.parse(gen.text, turn.available_actions, turn.task)
        return ActionSample(
            action=parsed.action,
            output=gen.text,
            parse_error=parsed.error,
            thought=parsed.thought,
            token_ids=gen.token_ids,
            logprobs=gen.logprobs,
            prompt_tokens=gen.prompt_tokens,
            finish_reason=gen.finish_reason,
            grounded_from=parsed.grounded_from,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            **self.backend.describe(),
            "sampling": {
                "max_new_tokens": self.sampling.max_new_tokens,
                "temperature": self.sampling.temperature,
                "top_p": self.sampling.top_p,
            },
            "prompt": {"style": self.prompt_style, "few_shot": self.few_shot, "history": self.history,
                       "grounding": self.grounding},
        }

    def close(self) -> None:
        self.backend.close()
