"""Scaling out: environment sessions on many hosts for the rollout engine.

A provider from here is the engine's ``make_env``: sessions on Ray actors spread over a cluster
(:func:`make_ray_env_provider`, or :class:`RayEnvProviders` for a run of several environment
configurations; the optional ``ray`` extra) or on several environment servers
(:func:`make_server_pool_provider`: local processes, containers). Either way the policy stays in the
driver and generates for every running episode in one batched call, and a session whose host dies
moves to a live one by replay without losing or repeating its episode (see ``failover``).
"""

from harness.distributed.failover import (
    EnvProvider,
    EnvProviders,
    FailoverEnv,
    HostLostError,
    NoLiveHostError,
    ReplayMismatchError,
)
from harness.distributed.ray_envs import LOCAL, RayEnvProviders, RayUnavailableError, make_ray_env_provider
from harness.distributed.server_pool import make_server_pool_provider

__all__ = [
    "LOCAL",
    "EnvProvider",
    "EnvProviders",
    "FailoverEnv",
    "HostLostError",
    "NoLiveHostError",
    "RayEnvProviders",
    "RayUnavailableError",
    "ReplayMismatchError",
    "make_ray_env_provider",
    "make_server_pool_provider",
]
