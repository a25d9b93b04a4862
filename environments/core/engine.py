"""The contract between a text game engine and everything that hosts it.

A server, the Gymnasium client and the experts all drive an engine through :class:`TextSession`,
so WebShop and ALFWorld share one server, one client and one Gymnasium wrapper. Everything a session
returns must be JSON-serialisable, because the same values travel over HTTP unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

JSONDict = dict[str, Any]


class InvalidOptionsError(ValueError):
    """Reset options a session cannot honour (unknown goal, bad split, ...); servers answer 400."""


class SessionStateError(RuntimeError):
    """A call that the session's state does not allow (step before reset); servers answer 409."""


class EngineUnavailableError(SessionStateError):
    """The engine cannot serve the call now (a worker process hung or died); servers answer 503.

    A subclass of :class:`SessionStateError` because the session's game is gone: callers that
    already handle bad state keep working, and a new ``reset`` may succeed.
    """


@dataclass
class StepOutcome:
    """What one action did. ``terminated`` means the game itself ended (bought, won)."""

    observation: str
    reward: float
    terminated: bool
    info: JSONDict = field(default_factory=dict)

    def to_json(self) -> JSONDict:
        return {
            "observation": self.observation,
            "reward": self.reward,
            "terminated": self.terminated,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> StepOutcome:
        return cls(
            observation=str(payload["observation"]),
            reward=float(payload["reward"]),
            terminated=bool(payload["terminated"]),
            info=dict(payload.get("info") or {}),
        )


@runtime_checkable
class TextSession(Protocol):
    """One game instance that plays episodes one after another.

    ``reset`` takes environment-specific options (for example ``{"goal_index": 3}`` or
    ``{"split": "test"}``) and returns the first observation and an info dict that carries at least
    ``available_actions``. ``step`` never raises for a bad action: the engine answers it the way the
    original benchmark does (usually an unchanged observation and zero reward).
    """

    def reset(self, options: Mapping[str, Any] | None = None) -> tuple[str, JSONDict]: ...

    def step(self, action: str) -> StepOutcome: ...

    def observation(self) -> str: ...

    def available_actions(self) -> Any: ...

    def close(self) -> None: ...


class SessionFactory(Protocol):
    """Makes sessions for a server or an in-process client; one factory per engine configuration.

    A factory may also have a ``warm_up()`` method: a server calls it once its socket is bound and
    before it serves, to load what the first requests would otherwise all wait for; and a true
    ``steps_in_workers`` attribute when its sessions play in worker processes, so that an in-process
    client may step several sessions at once from threads (the engine waits, not computes).
    """

    def new_session(self) -> TextSession: ...

    def describe(self) -> JSONDict:
        """Facts about the engine for ``/health`` (catalogue size, number of games, ...)."""
        ...

    def close(self) -> None: ...
