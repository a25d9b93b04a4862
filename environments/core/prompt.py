"""What an environment tells the agents' prompt formats: instructions, how actions are listed and read.

It belongs to the environment (``EnvSpec.prompt``), not to the agents: the styles (ReAct, verl-agent's
template) are generic and live in ``agents.prompts.formats``; only this part is written per environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Normalizer = Callable[[str, Any], tuple[str | None, str | None]]
"""(candidate, available actions) -> (action, None) or (None, error)."""


@dataclass(frozen=True)
class EnvPrompt:
    """What the prompt formats need to know about one environment."""

    react_instructions: str
    verl_intro: str
    list_actions: Callable[[Any], list[str]]
    concrete_actions: Callable[[Any, str], list[str]]  # (available actions, task) -> actions a script may send
    normalize: Normalizer
    example: Sequence[tuple[str, str, str]] = ()  # (observation, thought, action) of a worked episode
    syntax: re.Pattern[str] | None = None  # the action syntax, found anywhere in a reply
    thought_action: str | None = None  # how to send a reply that is only a thought (ReAct's "think: {}")
    default_history: dict[str, int | None] = field(default_factory=lambda: {"react": 4, "verl": 2})
