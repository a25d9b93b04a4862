"""Environment sessions as Ray actors spread over a cluster's nodes (the optional ``ray`` extra).

Each :class:`EnvWorker` actor takes ``cpus_per_worker`` CPUs on some node (placement ``SPREAD``) and
hosts any number of sessions: Gymnasium environments made exactly as the in-process rollout engine
makes them (``gymnasium.make(gym_id, max_steps=..., **env_options)``), so a rollout over Ray gives the
trajectories a local rollout gives for the same seeds. The driver keeps the policy: generation stays
one batched call per engine step over every episode, wherever its environment lives.

A worker lost with its node (or timing out) is killed and dropped; its sessions move to the live
workers by replay (:mod:`harness.distributed.failover`). Ray is imported only when a provider is made.

    provider = make_ray_env_provider("127.0.0.1:6379", "webshop", workers=4)
    with provider:
        RolloutEngine(policy, RolloutConfig(env="webshop", concurrency=16), make_env=provider).run(episodes)
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


class EnvWorker:
    """Hosts sessions of one environment configuration in a Ray actor (one process on one node)."""

    def __init__(self, env: str, max_steps: int, env_options: Mapping[str, Any]) -> None:
        import environments  # noqa: F401 - registers the Gymnasium ids
        from environments.core.registry import get_env_spec

        self._spec = get_env_spec(env)
        self._max_steps = max_steps
        self._env_options = dict(env_options)
        self._envs: dict[int, Any] = {}
        self._idle: list[Any] = []  # environments of closed sessions, kept warm for the next ones
        self._ids = itertools.count(1)  # never reused: a stale id is an error, not another episode
        self._steps = 0

    def open(self) -> int:
        """A new session id; its environment is a warm one when a closed session left one.

        Every session starts with a reset (the driver refuses a step before it), so a reused
        environment carries nothing over; what it saves is the engine's start-up (ALFWorld: a game
        process and its planner) on every rollout after the first.
        """
        import gymnasium

        env = self._idle.pop() if self._idle else gymnasium.make(
            self._spec.gym_id, max_steps=self._max_steps, **self._env_options)
        session = next(self._ids)
        self._envs[session] = env
        return session

    def _env(self, session: int) -> Any:
        try:
            return self._envs[session]
        except KeyError:
            raise KeyError(f"no open session {session} on this worker") from None

    def reset(self, session: int, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return self._env(session).reset(seed=seed, options=options)

    def step(self, session: int, action: str) -> StepResult:
        self._steps += 1
        return self._env(session).step(action)

    def close(self, session: int) -> None:
        env = self._envs.pop(session, None)
        if env is not None:
            self._idle.append(env)

    def where(self) -> dict[str, Any]:
        """Where this worker runs and what it has done (placement checks, benchmarks)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
                "pid": os.getpid(), "sessions": len(self._envs), "idle_envs": len(self._idle), "steps": self._steps}

    def shutdown(self) -> None:
        """Close every environment (engines with child processes stop them) before the actor is killed."""
        envs, self._envs, self._idle = [*self._envs.values(), *self._idle], {}, []
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

    hosts: RayHosts
    worker: _Worker
    session: int

    @property
    def host(self) -> str:
        return self.worker.name

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return self.hosts.get(self.worker, self.worker.actor.reset.remote(self.session, seed, options))

    def step(self, action: str) -> StepResult:
        return self.hosts.get(self.worker, self.worker.actor.step.remote(self.session, action))

    def close(self) -> None:
        self.hosts.release(self)


class RayHosts:
    """The :class:`~harness.distributed.failover.SessionHosts` of a set of :class:`EnvWorker` actors."""

    def __init__(self, address: str, env: str, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                 max_steps: int | None = None, env_options: Mapping[str, Any] | None = None,
                 call_timeout_s: float = 600.0, start_timeout_s: float = 300.0,
                 runtime_env: Mapping[str, Any] | None = None) -> None:
        from environments.core.registry import get_env_spec

        if not address:
            raise ValueError(f"give a Ray address (host:port, ray://host:port, auto) or {LOCAL!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if cpus_per_worker <= 0 or call_timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("cpus_per_worker, call_timeout_s and start_timeout_s must be positive")
        spec = get_env_spec(env)  # unknown names fail here, with the installed ones listed
        self.env = env
        self.max_steps = max_steps or spec.default_max_steps
        self.env_options = dict(env_options or {})
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
        started = [_Worker(actor_class.remote(self.env, self.max_steps, self.env_options),
                           f"ray-worker-{next(self._names)}") for _ in range(count)]
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
        log.info("%d %s worker(s) on %d node(s)", count, self.env, len({w.node_id for w in started}))

    # -- SessionHosts -----------------------------------------------------------------------------------
    def open(self) -> HostedSession:
        with self._lock:
            live = [worker for worker in self._workers if worker.alive]
            if not live:
                raise NoLiveHostError(f"every {self.env} worker is gone; no session can be opened")
            worker = min(live, key=lambda w: w.sessions)  # the least loaded; ties go to the oldest
            worker.sessions += 1
        try:
            return _RaySession(self, worker, self.get(worker, worker.actor.open.remote()))
        except BaseException as exc:
            with self._lock:
                worker.sessions -= 1
            if isinstance(exc, HostLostError):
                self._drop(worker, exc)
            raise

    def lost(self, session: HostedSession, error: BaseException) -> None:
        if not isinstance(session, _RaySession):
            raise TypeError(f"not a session of these Ray workers: {session!r}")
        with self._lock:
            session.worker.sessions -= 1  # it moves to another worker
        self._drop(session.worker, error)

    def _drop(self, worker: _Worker, error: BaseException) -> None:
        with self._lock:
            if not worker.alive:
                return
            worker.alive = False
        log.warning("environment worker %s on node %s lost: %s", worker.name, worker.node_id[:12], error)
        self._ray.kill(worker.actor, no_restart=True)  # a worker that merely stalled must not keep playing

    def release(self, session: _RaySession) -> None:
        worker = session.worker
        with self._lock:
            worker.sessions -= 1
            alive = worker.alive
        if alive:
            self.get(worker, worker.actor.close.remote(session.session))

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
        return {"backend": "ray", "env": self.env, "workers": workers,
                "nodes": len({w["node_id"] for w in workers if w["alive"]})}

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
    hosts = RayHosts(address, env_name, workers=workers, cpus_per_worker=cpus_per_worker, max_steps=max_steps,
                     env_options=env_options, call_timeout_s=call_timeout_s, runtime_env=runtime_env)
    return EnvProvider(hosts, max_recoveries=max_recoveries)
