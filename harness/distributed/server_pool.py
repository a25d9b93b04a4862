"""Environment sessions spread over several environment servers (processes, containers, machines).

The rollout engine's own remote mode plays on one server (``RolloutConfig.server_url``); this pool
spreads the sessions over many, least-loaded first, and moves a session by replay when its server
stops answering (:mod:`harness.distributed.failover`). Each session is the standard Gymnasium client
(``EnvSpec.make_gym(server_url=...)``), so the play is that of one server.

    with make_server_pool_provider(["http://127.0.0.1:3000", "http://127.0.0.1:3002"], "webshop") as provider:
        RolloutEngine(policy, config, make_env=provider).run(episodes)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from environments.core.client import EnvServerError
from environments.core.registry import get_env_spec
from harness.distributed.failover import EnvProvider, HostedSession, HostLostError, NoLiveHostError, StepResult

log = logging.getLogger(__name__)


@dataclass
class _Server:
    url: str
    sessions: int = 0
    alive: bool = True


def _unreachable(exc: EnvServerError) -> bool:
    return exc.status == 0  # the client's code for "no answer at all" (connection refused or reset)


@dataclass
class _ServerSession:
    """A :class:`HostedSession`: the Gymnasium client of one server session."""

    pool: ServerPoolHosts
    server: _Server
    env: Any

    @property
    def host(self) -> str:
        return self.server.url

    def _guard(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except EnvServerError as exc:
            if _unreachable(exc):
                raise HostLostError(str(exc)) from exc
            raise

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return self._guard(self.env.reset, seed=seed, options=options)

    def step(self, action: str) -> StepResult:
        return self._guard(self.env.step, action)

    def close(self) -> None:
        self.pool.release(self)


class ServerPoolHosts:
    """The :class:`~harness.distributed.failover.SessionHosts` of a list of environment server URLs."""

    def __init__(self, urls: Sequence[str], env: str, *, max_steps: int | None = None,
                 env_options: Mapping[str, Any] | None = None) -> None:
        if not urls:
            raise ValueError("give at least one server URL")
        if len(set(urls)) != len(urls):
            raise ValueError("server URLs must be distinct")
        bad = [url for url in urls if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"server URLs must start with http:// or https://: {', '.join(bad)}")
        self.spec = get_env_spec(env)
        self.env = env
        self.max_steps = max_steps or self.spec.default_max_steps
        self.env_options = dict(env_options or {})
        self._lock = threading.Lock()
        self._servers = [_Server(url.rstrip("/")) for url in urls]

    def open(self) -> HostedSession:
        with self._lock:
            live = [server for server in self._servers if server.alive]
            if not live:
                raise NoLiveHostError(f"no {self.env} server of {len(self._servers)} answers")
            server = min(live, key=lambda s: s.sessions)
            server.sessions += 1
        try:
            env = self.spec.make_gym(self.max_steps, server_url=server.url, **self.env_options)
        except BaseException as exc:
            with self._lock:
                server.sessions -= 1
            if isinstance(exc, EnvServerError) and _unreachable(exc):
                self._drop(server, exc)
                raise HostLostError(str(exc)) from exc
            if isinstance(exc, OSError):  # requests' ConnectionError while reading the server's health
                self._drop(server, exc)
                raise HostLostError(f"{server.url}: {exc}") from exc
            raise
        return _ServerSession(self, server, env)

    def lost(self, session: HostedSession, error: BaseException) -> None:
        if not isinstance(session, _ServerSession):
            raise TypeError(f"not a session of this server pool: {session!r}")
        with self._lock:
            session.server.sessions -= 1  # it moves to another server
        self._drop(session.server, error)

    def _drop(self, server: _Server, error: BaseException) -> None:
        with self._lock:
            if not server.alive:
                return
            server.alive = False
        log.warning("environment server %s lost: %s", server.url, error)

    def release(self, session: _ServerSession) -> None:
        with self._lock:
            session.server.sessions -= 1
        session.env.close()  # the client ignores a server that is already gone

    def describe(self) -> dict[str, Any]:
        with self._lock:
            servers = [{"url": s.url, "sessions": s.sessions, "alive": s.alive} for s in self._servers]
        return {"backend": "servers", "env": self.env, "servers": servers}

    def close(self) -> None:
        """The servers belong to whoever started them; the sessions close with their environments."""


def make_server_pool_provider(urls: Sequence[str], env_name: str, *, max_steps: int | None = None,
                              env_options: Mapping[str, Any] | None = None, max_recoveries: int = 3) -> EnvProvider:
    """A rollout engine ``make_env`` that spreads sessions over the environment servers at ``urls``."""
    return EnvProvider(ServerPoolHosts(urls, env_name, max_steps=max_steps, env_options=env_options),
                       max_recoveries=max_recoveries)
