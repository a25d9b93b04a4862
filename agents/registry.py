"""Policies are plugins: each publishes a :class:`PolicySpec` under the ``harness.policies`` entry-point
group (the built-ins in :mod:`agents.builtin` too), looked up by name by the CLI and the rollout engine
in :data:`REGISTRY` (the one plugin rule of :mod:`foundation.registry`).
"""

from __future__ import annotations

from typing import Any

from agents.policy import Policy
from agents.policy_spec import PolicySpec
from foundation.registry import Registry, RegistryLookupError

__all__ = ["BUILTIN_POLICIES", "ENTRY_POINT_GROUP", "REGISTRY", "PolicySpec", "UnknownPolicyError",
           "get_policy_spec", "make_policy", "policy_specs"]

ENTRY_POINT_GROUP = "harness.policies"

#: the built-in policies, exactly as pyproject.toml declares them under [project.entry-points."harness.policies"]
BUILTIN_POLICIES: dict[str, str] = {
    "transformers": "agents.builtin:TRANSFORMERS",
    "vllm": "agents.builtin:VLLM",
    "vllm-server": "agents.builtin:VLLM_SERVER",
    "openai": "agents.builtin:OPENAI",
    "expert": "agents.builtin:EXPERT",
    "random": "agents.builtin:RANDOM",
}


class UnknownPolicyError(RegistryLookupError):
    """No policy of that name is installed, or the plugin claiming the name is broken."""


REGISTRY: Registry[PolicySpec] = Registry(
    "policy", ENTRY_POINT_GROUP, BUILTIN_POLICIES, accepts=lambda value: isinstance(value, PolicySpec),
    expected=f"an {PolicySpec.__module__}.PolicySpec", name_of=lambda spec: spec.name, error=UnknownPolicyError)


def policy_specs() -> dict[str, PolicySpec]:
    """The installed policies that load, by name (broken plugins are left out; ``REGISTRY.entries()`` lists
    them with their errors)."""
    return REGISTRY.loaded()


def get_policy_spec(name: str) -> PolicySpec:
    """The policy ``name``; :class:`UnknownPolicyError` if none is installed or its plugin is broken."""
    return REGISTRY.get(name)


def make_policy(name: str, **options: Any) -> Policy:
    """Build the policy ``name``; unknown options are refused with the list of accepted ones."""
    spec = get_policy_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(sorted(spec.options)) or "none"
        raise ValueError(f"policy {name!r} does not take option(s) {', '.join(unknown)}; it takes: {accepted}")
    missing = [option for option in spec.required_options() if option not in options]
    if missing:
        raise ValueError(f"policy {name!r} needs option(s) {', '.join(missing)}")
    return spec.make(**options)
