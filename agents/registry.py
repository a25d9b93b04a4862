"""Policies are plugins: each publishes a :class:`PolicySpec` under the ``harness.policies`` entry-point
group (the built-ins in :mod:`agents.builtin` too), looked up by name by the CLI and the rollout engine.
"""

from __future__ import annotations

import inspect
import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from agents.builtin import BUILTIN_POLICIES
from agents.policy import Policy
from agents.policy_spec import PolicySpec

__all__ = ["ENTRY_POINT_GROUP", "PolicySpec", "UnknownPolicyError", "get_policy_spec", "make_policy", "policy_specs"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness.policies"


class UnknownPolicyError(KeyError):
    def __str__(self) -> str:
        return f"unknown policy {self.args[0]!r}; installed: {', '.join(sorted(policy_specs())) or 'none'}"


@cache
def policy_specs() -> dict[str, PolicySpec]:
    """All policies by name: the built-ins, then entry-point plugins (which may add or replace names).

    The built-ins are published under the same entry-point group; they are also listed here directly
    so that a checkout whose installed metadata predates them still finds them.
    """
    specs = {spec.name: spec for spec in BUILTIN_POLICIES}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception:
            log.exception("policy plugin %r failed to load; skipping it", ep.name)
            continue
        if not isinstance(spec, PolicySpec):
            log.error("entry point %r does not point at a PolicySpec; skipping it", ep.name)
            continue
        specs[spec.name] = spec
    return specs


def get_policy_spec(name: str) -> PolicySpec:
    try:
        return policy_specs()[name]
    except KeyError:
        raise UnknownPolicyError(name) from None


def make_policy(name: str, **options: Any) -> Policy:
    """Build the policy ``name``; unknown options are refused with the list of accepted ones."""
    spec = get_policy_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(sorted(spec.options)) or "none"
        raise ValueError(f"policy {name!r} does not take option(s) {', '.join(unknown)}; it takes: {accepted}")
    missing = [p.name for p in inspect.signature(spec.make).parameters.values()
               if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY and p.name not in options]
    if missing:
        raise ValueError(f"policy {name!r} needs option(s) {', '.join(missing)}")
    return spec.make(**options)
