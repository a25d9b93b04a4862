"""The policy interface: a batch of agent turns in, one (or ``n``) actions per turn out.

A *turn* is what an agent knows when it must act: the task, the observation/action history and the
current observation with its available actions. A :class:`Policy` answers a whole batch of turns
at once, because batching is where the speed is (one forward pass for many episodes). Language-model
policies (:class:`agents.lm_policy.LMPolicy`) render each turn into a chat conversation with a
:class:`~agents.prompts.PromptFormat`, generate with an :class:`LMBackend` and parse the reply back
into an action; scripted policies (experts, random) answer directly. Every answer carries the
generated token ids and their log-probabilities where the backend has them, because RL trainers need
exactly those.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``."""


@dataclass(frozen=True)
class SamplingParams:
    """How to decode. ``temperature == 0`` is greedy; ``n`` samples are drawn per prompt.

    ``stop`` strings end a sample early; the returned text stops before the stop string while the
    token ids keep every generated token (as vLLM reports them), so RL sees what was sampled.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class GenerationRequest:
    """One prompt for a backend; ``seed`` makes its samples reproducible whatever else is batched."""

    messages: list[Message]
    seed: int | None = None


@dataclass
class Generation:
    """One sampled completion.

    ``token_ids``/``logprobs`` are the generated tokens and their log-probabilities under the model
    (before temperature and top-p, as vLLM reports them by default); ``None`` where a backend cannot
    tell (a generic OpenAI endpoint without token ids).
    """

    text: str
    token_ids: list[int] | None
    logprobs: list[float] | None
    prompt_tokens: int | None
    finish_reason: str

    @property
    def generated_tokens(self) -> int | None:
        if self.token_ids is not None:
            return len(self.token_ids)
        return len(self.logprobs) if self.logprobs is not None else None


class LMBackend(ABC):
    """Turns chat conversations into completions; implemented per inference engine."""

    #: short identifier recorded in trajectories (``transformers``, ``openai``, ...)
    kind: str = ""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` generations for each request, in request order."""

    def describe(self) -> dict[str, Any]:
        """Facts recorded in trajectory metadata (model, dtype, adapter, endpoint)."""
        return {"backend": self.kind}

    def compute_device(self) -> str:
        """Where generation runs, as the compute ledger records it (``cpu``, ``cuda:0``; ``remote`` for a
        server whose hardware this process cannot see)."""
        return "remote"

    def close(self) -> None:  # noqa: B027 - an optional hook; most backends hold nothing to release
        """Release the model or connections."""


@dataclass
class HistoryItem:
    """One earlier step of the episode as the agent lived it."""

    observation: str
    action: str
    output: str  # what the policy wrote (thoughts included); equals ``action`` for scripted policies


@dataclass
class AgentTurn:
    """Everything a policy may use to choose the next action of one episode."""

    episode_id: str
    env: str
    task: str
    observation: str
    available_actions: Any
    history: list[HistoryItem] = field(default_factory=list)
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return len(self.history)


@dataclass
class ActionSample:
    """A policy's answer for one turn: the action to send and how it was produced.

    ``action`` is something the environment can be sent; when the model's reply could not be parsed,
    ``parse_error`` says why and ``action`` is a sanitised form of the raw reply (the environment then
    answers it as an invalid action, as the original benchmarks do), or with ``nearest`` grounding the
    admissible action most similar to it. ``None`` means the policy gives up and ends the episode (a
    scripted expert that has run out of plans).
    """

    action: str | None
    output: str
    parse_error: str | None = None
    thought: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_tokens: int | None = None
    finish_reason: str = "scripted"
    grounded_from: str | None = None  # the parsed action that grounding replaced with ``action``

    @property
    def generated_tokens(self) -> int:
        if self.token_ids is not None:
            return len(self.token_ids)
        return len(self.logprobs) if self.logprobs is not None else 0


class Policy(ABC):
    """Maps a batch of turns to actions; ``n`` samples per turn."""

    #: recorded as the trajectory ``source`` unless the caller names it otherwise
    name: str = "policy"

    @abstractmethod
    def act(self, turns: Sequence[AgentTurn], n: int = 1) -> list[list[ActionSample]]:
        """``n`` action samples per turn, in turn order."""

    def start_episode(self, episode_id: str, env: str, observation: str,  # noqa: B027 - optional hook
                      info: dict[str, Any]) -> None:
        """Called after the environment of ``episode_id`` was reset; scripted policies keep state here."""

    def end_episode(self, episode_id: str) -> None:  # noqa: B027 - optional hook
        """Called when the episode is over (finished, truncated or failed)."""

    def describe(self) -> dict[str, Any]:
        """Facts recorded in trajectory metadata."""
        return {"policy": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models, servers and connections."""


def derive_seed(*parts: int | str) -> int:
    """A stable 31-bit seed from several parts (episode seed, step, sample index)."""
    return random.Random("/".join(str(p) for p in parts)).randrange(2**31 - 1)
