"""Environments are plugins: each one publishes an :class:`EnvSpec` under the ``harness.envs``
entry-point group (the built-ins too), and the CLI, servers and rollout engine look them up by name
in :data:`REGISTRY` (the one plugin rule of :mod:`foundation.registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

from environments.core.engine import SessionFactory
from foundation.registry import Registry, RegistryLookupError

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


class UnknownEnvError(RegistryLookupError):
    """No environment of that name is installed, or the plugin claiming the name is broken."""


#: the built-in environments, exactly as pyproject.toml declares them under [project.entry-points."harness.envs"]
BUILTIN_ENVS: dict[str, str] = {
    "webshop": "environments.webshop.spec:SPEC",
    "alfworld": "environments.alfworld.spec:SPEC",
}

REGISTRY: Registry[EnvSpec] = Registry(
    "environment", ENTRY_POINT_GROUP, BUILTIN_ENVS, accepts=lambda value: isinstance(value, EnvSpec),
    expected=f"an {EnvSpec.__module__}.EnvSpec", name_of=lambda spec: spec.name, error=UnknownEnvError)


def env_specs() -> dict[str, EnvSpec]:
    """The installed environments that load, by name (broken plugins are left out; ``REGISTRY.entries()`` lists
    them with their errors)."""
    return REGISTRY.loaded()


def get_env_spec(name: str) -> EnvSpec:
    """The environment ``name``; :class:`UnknownEnvError` if none is installed or its plugin is broken."""
    return REGISTRY.get(name)
