"""Environment sessions as Ray actors spread over a cluster's nodes (the optional ``ray`` extra).

Each :class:`EnvWorker` actor takes ``cpus_per_worker`` CPUs on some node (placement ``SPREAD``) and
hosts any number of sessions: Gymnasium environments made exactly as the in-process rollout engine
makes them (``EnvSpec.make_gym(max_steps, **env_options)``), so a rollout over Ray gives the
trajectories a local rollout gives for the same seeds. The driver keeps the policy: generation stays
one batched call per engine step over every episode, wherever its environment lives.

A worker lost with its node (or timing out) is killed and dropped; its sessions move to the live
workers by replay (:mod:`harness.distributed.failover`). Ray is imported only when a provider is made.

    provider = make_ray_env_provider("127.0.0.1:6379", "webshop", workers=4)
    with provider:
        RolloutEngine(policy, RolloutConfig(env="webshop", concurrency=16), make_env=provider).run(episodes)

A run that plays several environment configurations (``harness eval``: each environment, the expert
under the environment's step cap beside the agent under the configured one) connects once and starts
the actors once, with :class:`RayEnvProviders`: a worker hosts sessions of any configuration.

    with RayEnvProviders("127.0.0.1:6379", workers=4) as envs:
        RolloutEngine(policy, config, make_env=envs.provider("webshop", max_steps=6)).run(episodes)
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from environments.core.registry import get_env_spec
from harness.distributed.failover import (
    EnvProvider,
    HostedSession,
    HostLostError,
    NoLiveHostError,
    StepResult,
)

log = logging.getLogger(__name__)

LOCAL = "local"
"""``address`` value that starts a private single-node Ray instead of joining a cluster."""


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or no cluster answers at the address given."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "Ray is not installed: pip install 'prism-harness[ray]' (or 'ray==2.60.*')"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens at (``ray.init`` would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "local", "auto" and ray:// addresses are resolved (and refused) by Ray itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"no Ray cluster answers at {address!r} ({exc}); start one with `ray start --head --port={port}`"
        ) from exc


def _config_key(env: str, max_steps: int | None, env_options: Mapping[str, Any]) -> str:
    """One string per environment configuration (options are unhashable mappings)."""
    return json.dumps([env, max_steps, env_options], sort_keys=True, default=repr)


class EnvWorker:
    """Hosts environment sessions, of any configuration, in a Ray actor (one process on one node)."""

    def __init__(self) -> None:
        self._envs: dict[int, tuple[str, Any]] = {}  # session -> (configuration, environment)
        self._idle: dict[str, list[Any]] = {}  # environments of closed sessions by configuration, kept warm
        self._ids = itertools.count(1)  # never reused: a stale id is an error, not another episode
        self._steps = 0

    def open(self, env: str, max_steps: int, env_options: Mapping[str, Any]) -> int:
        """A new session id; its environment is a warm one when a closed session of its configuration left one.

        Every session starts with a reset (the driver refuses a step before it), so a reused
        environment carries nothing over; what it saves is the engine's start-up (ALFWorld: a game
        process and its planner) on every rollout after the first.
        """
        key = _config_key(env, max_steps, env_options)
        idle = self._idle.get(key)
        made = idle.pop() if idle else get_env_spec(env).make_gym(max_steps, **env_options)
        session = next(self._ids)
        self._envs[session] = (key, made)
        return session

    def _env(self, session: int) -> Any:
        try:
            return self._envs[session][1]
        except KeyError:
            raise KeyError(f"no open session {session} on this worker") from None

    def reset(self, session: int, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return self._env(session).reset(seed=seed, options=options)

    def step(self, session: int, action: str) -> StepResult:
        self._steps += 1
        return self._env(session).step(action)

    def close(self, session: int) -> None:
        key, env = self._envs.pop(session, (None, None))
        if env is not None:
            self._idle.setdefault(key, []).append(env)

    def where(self) -> dict[str, Any]:
        """Where this worker runs and what it has done (placement checks, benchmarks)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
                "pid": os.getpid(), "sessions": len(self._envs), "idle_envs": sum(map(len, self._idle.values())),
                "steps": self._steps}

    def shutdown(self) -> None:
        """Close every environment (engines with child processes stop them) before the actor is killed."""
        envs = [env for _, env in self._envs.values()] + [env for idle in self._idle.values() for env in idle]
        self._envs, self._idle = {}, {}
        for env in envs:
            env.close()


@dataclass
class _Worker:
    actor: Any
    name: str
    node_id: str = ""
    sessions: int = 0
    alive: bool = True


@dataclass
class _RaySession:
    """A :class:`HostedSession` on one :class:`EnvWorker`."""

    workers: RayWorkers
    worker: _Worker
    session: int

    @property
    def host(self) -> str:
        return self.worker.name

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return self.workers.get(self.worker, self.worker.actor.reset.remote(self.session, seed, options))

    def step(self, action: str) -> StepResult:
        return self.workers.get(self.worker, self.worker.actor.step.remote(self.session, action))

    def close(self) -> None:
        self.workers.release(self.worker, self.session)


class RayWorkers:
    """A connection to a Ray cluster and a set of :class:`EnvWorker` actors spread over its nodes."""

    def __init__(self, address: str, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                 call_timeout_s: float = 600.0, start_timeout_s: float = 300.0,
                 runtime_env: Mapping[str, Any] | None = None) -> None:
        if not address:
            raise ValueError(f"give a Ray address (host:port, ray://host:port, auto) or {LOCAL!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if cpus_per_worker <= 0 or call_timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("cpus_per_worker, call_timeout_s and start_timeout_s must be positive")
        self.cpus_per_worker = cpus_per_worker
        self.call_timeout_s = call_timeout_s
        self.start_timeout_s = start_timeout_s
        self._ray = _ray()
        self._owns_ray = self._connect(address, runtime_env, workers)
        self._lock = threading.Lock()
        self._names = itertools.count(1)
        self._workers: list[_Worker] = []
        try:
            count = workers or max(1, int(self._ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
            self._start_workers(count)
        except BaseException:
            self.close()
            raise

    def _connect(self, address: str, runtime_env: Mapping[str, Any] | None, workers: int | None) -> bool:
        """Join the cluster (or start a private one for ``local``); True when this object started Ray."""
        ray = self._ray
        if ray.is_initialized():
            log.info("Ray is already initialised in this process: using that connection")
            return False
        kwargs: dict[str, Any] = {"log_to_driver": False, "runtime_env": dict(runtime_env or {}) or None}
        _check_reachable(address)
        try:
            if address == LOCAL:
                cpus = math.ceil((workers or os.cpu_count() or 1) * self.cpus_per_worker)
                ray.init(num_cpus=cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, TimeoutError, ValueError) as exc:
            raise RayUnavailableError(
                f"no Ray cluster answers at {address!r} ({exc}); start one with `ray start --head` "
                f"(and `ray start --address=HEAD:PORT` on each other node), or use {LOCAL!r}"
            ) from exc
        return True

    def _start_workers(self, count: int) -> None:
        ray = self._ray
        actor_class = ray.remote(EnvWorker).options(
            num_cpus=self.cpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD",
        )
        started = [_Worker(actor_class.remote(), f"ray-worker-{next(self._names)}") for _ in range(count)]
        refs = [worker.actor.where.remote() for worker in started]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        if len(ready) < len(refs):
            for worker in started:
                ray.kill(worker.actor)
            raise RayUnavailableError(
                f"only {len(ready)} of {count} environment workers ({self.cpus_per_worker} CPU each) started within "
                f"{self.start_timeout_s:.0f} s; the cluster has {ray.cluster_resources().get('CPU', 0)} CPUs"
            )
        for worker, where in zip(started, ray.get(refs), strict=True):
            worker.node_id = where["node_id"]
        with self._lock:
            self._workers += started
        log.info("%d environment worker(s) on %d node(s)", count, len({w.node_id for w in started}))

    def open(self, env: str, max_steps: int, env_options: Mapping[str, Any]) -> tuple[_Worker, int]:
        """A new session of this configuration on the least-loaded live worker: (worker, session id)."""
        with self._lock:
            live = [worker for worker in self._workers if worker.alive]
            if not live:
                raise NoLiveHostError(f"every environment worker is gone; no {env} session can be opened")
            worker = min(live, key=lambda w: w.sessions)  # ties go to the oldest
            worker.sessions += 1
        try:
            return worker, self.get(worker, worker.actor.open.remote(env, max_steps, dict(env_options)))
        except BaseException as exc:
            with self._lock:
                worker.sessions -= 1
            if isinstance(exc, HostLostError):
                self._drop(worker, exc)
            raise

    def lost(self, worker: _Worker, error: BaseException) -> None:
        """A session on ``worker`` failed with ``error`` and moves to another worker."""
        with self._lock:
            worker.sessions -= 1
        self._drop(worker, error)

    def _drop(self, worker: _Worker, error: BaseException) -> None:
        with self._lock:
            if not worker.alive:
                return
            worker.alive = False
        log.warning("environment worker %s on node %s lost: %s", worker.name, worker.node_id[:12], error)
        self._ray.kill(worker.actor, no_restart=True)  # a worker that merely stalled must not keep playing

    def release(self, worker: _Worker, session: int) -> None:
        with self._lock:
            worker.sessions -= 1
            alive = worker.alive
        if alive:
            self.get(worker, worker.actor.close.remote(session))

    def get(self, worker: _Worker, ref: Any) -> Any:
        """The result of a call on ``worker``; its death (or silence) becomes :class:`HostLostError`."""
        ray = self._ray
        try:
            return ray.get(ref, timeout=self.call_timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            raise HostLostError(f"{worker.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc

    def describe(self) -> dict[str, Any]:
        with self._lock:
            workers = [{"name": w.name, "node_id": w.node_id, "sessions": w.sessions, "alive": w.alive}
                       for w in self._workers]
        return {"backend": "ray", "workers": workers, "nodes": len({w["node_id"] for w in workers if w["alive"]})}

    def placement(self) -> list[dict[str, Any]]:
        """Each live worker's own report (node, pid, sessions, steps played)."""
        with self._lock:
            live = [worker for worker in self._workers if worker.alive]
        return [self.get(worker, worker.actor.where.remote()) for worker in live]

    def close(self) -> None:
        ray = self._ray
        with self._lock:
            workers, self._workers = self._workers, []
        live = [worker for worker in workers if worker.alive]
        # Let the workers close their sessions (engines with child processes stop them), then stop them.
        ray.wait([worker.actor.shutdown.remote() for worker in live], num_returns=len(live), timeout=30)
        for worker in live:
            ray.kill(worker.actor, no_restart=True)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False


class RayHosts:
    """The :class:`~harness.distributed.failover.SessionHosts` of one environment configuration on some workers."""

    def __init__(self, workers: RayWorkers, env: str, *, max_steps: int | None = None,
                 env_options: Mapping[str, Any] | None = None, owns_workers: bool = False) -> None:
        spec = get_env_spec(env)  # unknown names fail here, with the installed ones listed
        self.workers = workers
        self.env = env
        self.max_steps = max_steps or spec.default_max_steps
        self.env_options = dict(env_options or {})
        self._owns_workers = owns_workers

    def open(self) -> HostedSession:
        return _RaySession(self.workers, *self.workers.open(self.env, self.max_steps, self.env_options))

    def lost(self, session: HostedSession, error: BaseException) -> None:
        if not isinstance(session, _RaySession) or session.workers is not self.workers:
            raise TypeError(f"not a session of these Ray workers: {session!r}")
        self.workers.lost(session.worker, error)

    def describe(self) -> dict[str, Any]:
        return {**self.workers.describe(), "env": self.env}

    def placement(self) -> list[dict[str, Any]]:
        return self.workers.placement()

    def close(self) -> None:
        """Stops the workers if they are this configuration's alone (shared ones are closed by their owner)."""
        if self._owns_workers:
            self.workers.close()


def make_ray_env_provider(address: str, env_name: str, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                          max_steps: int | None = None, env_options: Mapping[str, Any] | None = None,
                          max_recoveries: int = 3, call_timeout_s: float = 600.0,
                          runtime_env: Mapping[str, Any] | None = None) -> EnvProvider:
    """A rollout engine ``make_env`` whose sessions run on Ray actors spread over the cluster at ``address``.

    ``workers`` actors (default: one per ``cpus_per_worker`` CPUs of the cluster) each host sessions
    of ``env_name`` built with ``max_steps`` (default: the environment's cap, as in the engine) and
    ``env_options``; pass the same values as the rollout's ``RolloutConfig``. ``address`` is a
    cluster's address (``host:6379``, ``ray://host:10001``, ``auto``) or ``"local"`` for a private
    single-node Ray. Close the provider (or use it as a context manager) to stop the actors; Ray itself
    is shut down only if the provider started it.
    """
    get_env_spec(env_name)  # an unknown name fails before Ray is touched
    pool = RayWorkers(address, workers=workers, cpus_per_worker=cpus_per_worker, call_timeout_s=call_timeout_s,
                      runtime_env=runtime_env)
    hosts = RayHosts(pool, env_name, max_steps=max_steps, env_options=env_options, owns_workers=True)
    return EnvProvider(hosts, max_recoveries=max_recoveries)


class RayEnvProviders:
    """Environment providers for a whole run on one Ray connection and one set of actors.

    :meth:`provider` gives the ``make_env`` of one environment configuration, made once and kept;
    every configuration shares the actors, so a run playing several of them neither reconnects nor
    has sets of actors compete for the cluster's CPUs. Close it (or use it as a context manager) to
    stop the actors; Ray itself is shut down only if this object started it.
    """

    def __init__(self, address: str, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                 max_recoveries: int = 3, call_timeout_s: float = 600.0,
                 runtime_env: Mapping[str, Any] | None = None) -> None:
        if max_recoveries < 0:
            raise ValueError(f"max_recoveries must be >= 0, got {max_recoveries}")
        self.workers = RayWorkers(address, workers=workers, cpus_per_worker=cpus_per_worker,
                                  call_timeout_s=call_timeout_s, runtime_env=runtime_env)
        self.max_recoveries = max_recoveries
        self._providers: dict[str, EnvProvider] = {}

    def provider(self, env: str, max_steps: int | None = None,
                 env_options: Mapping[str, Any] | None = None) -> EnvProvider:
        """The ``make_env`` for rollouts of ``env`` with this step cap (None: the environment's) and options."""
        key = _config_key(env, max_steps, env_options or {})
        if key not in self._providers:
            hosts = RayHosts(self.workers, env, max_steps=max_steps, env_options=env_options)
            self._providers[key] = EnvProvider(hosts, max_recoveries=self.max_recoveries)
        return self._providers[key]

    def describe(self) -> dict[str, Any]:
        """Workers, nodes and how many sessions had to move, over every configuration."""
        providers = list(self._providers.values())
        return {**self.workers.describe(), "recoveries": sum(p.stats.recoveries for p in providers),
                "replayed_steps": sum(p.stats.replayed_steps for p in providers)}

    def close(self) -> None:
        self.workers.close()

    def __enter__(self) -> RayEnvProviders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
