"""Environments are plugins: each one publishes an :class:`EnvSpec` under the ``harness.envs``
entry-point group (the built-ins too), and the CLI, servers and rollout engine look them up by name
in :data:`REGISTRY` (the one plugin rule of :mod:`foundation.registry`).
"""

from __future__ import annotations

from environments.core.spec import EnvSpec
from foundation.registry import Registry, RegistryLookupError

ENTRY_POINT_GROUP = "harness.envs"


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
