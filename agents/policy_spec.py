"""What a policy plugin publishes: a name, a factory and the options it accepts.

Its own module so that the built-ins (:mod:`agents.builtin`) and the lookup (:mod:`agents.registry`)
both build on it without importing each other in a circle.
"""

from __future__ import annotations

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
