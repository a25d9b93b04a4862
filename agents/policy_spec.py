"""What a policy plugin publishes: a name, a factory and the options it accepts.

Its own module so that the built-ins (:mod:`agents.builtin`) and the lookup (:mod:`agents.registry`)
both build on it without importing each other in a circle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agents.policy import Policy


@dataclass(frozen=True)
class PolicySpec:
    """A named way to build a policy: ``make(**options)``; ``options`` documents what it accepts."""

    name: str
    description: str
    make: Callable[..., Policy]
    options: Mapping[str, str] = field(default_factory=dict)

    def required_options(self) -> list[str]:
        """The options ``make`` cannot do without (keyword-only, no default)."""
        return [p.name for p in inspect.signature(self.make).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY]
