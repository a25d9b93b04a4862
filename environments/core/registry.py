"""Environments are plugins: each one publishes an :class:`EnvSpec` under the ``harness.envs``
entry-point group (the built-ins too), and the CLI, servers and rollout engine look them up by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from flask import Blueprint

from environments.core.engine import SessionFactory

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness.envs"


@dataclass(frozen=True)
class EnvSpec:
    """What the harness needs to know to host, play and script an environment.

    ``make_factory(**options)`` builds the engine (options are engine-specific, e.g. the
    observation mode); ``blueprints(factory)`` adds engine-specific web pages to its server;
    ``make_expert(**options)`` returns the scripted expert; ``gym_id`` is the registered Gymnasium id.
    ``server_threads`` is its server's default number of request threads: few where requests are
    CPU-bound Python (threads then only contend for the interpreter lock and the tail latency
    grows), more where they mostly wait on something else (ALFWorld's worker processes).
    """

    name: str
    gym_id: str
    description: str
    make_factory: Callable[..., SessionFactory]
    default_max_steps: int
    make_expert: Callable[..., Any] | None = None
    blueprints: Callable[[SessionFactory], Iterable[Blueprint]] = lambda factory: ()
    factory_options: Mapping[str, str] = field(default_factory=dict)
    server_threads: int = 16


class UnknownEnvError(KeyError):
    def __str__(self) -> str:
        return f"unknown environment {self.args[0]!r}; installed: {', '.join(sorted(env_specs())) or 'none'}"


@cache
def env_specs() -> dict[str, EnvSpec]:
    """All installed environments by name, loaded from entry points."""
    specs: dict[str, EnvSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception:
            log.exception("environment plugin %r failed to load; skipping it", ep.name)
            continue
        if not isinstance(spec, EnvSpec):
            log.error("entry point %r does not point at an EnvSpec; skipping it", ep.name)
            continue
        specs[spec.name] = spec
    return specs


def get_env_spec(name: str) -> EnvSpec:
    try:
        return env_specs()[name]
    except KeyError:
        raise UnknownEnvError(name) from None
