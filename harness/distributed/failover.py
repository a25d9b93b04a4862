"""Environment sessions spread over hosts that may die, for the rollout engine.

The rollout engine asks its ``make_env`` for Gymnasium-style environments and calls ``reset``,
``step`` and ``close`` on them. An :class:`EnvProvider` is such a ``make_env``: each environment it
makes (a :class:`FailoverEnv`) plays on a session that lives on some host (a Ray actor, an
environment server process) chosen by the provider's :class:`SessionHosts`. When that host dies
mid-episode, the environment opens a session on a live host, replays the episode so far (the same
reset seed and options, then the same actions) and checks that every replayed observation matches
what the engine already saw, then answers the call. The engine never sees the failure: an episode
is neither lost nor written twice, and its content is the content of an undisturbed run. The
environments are deterministic given the reset seed and options, which is what makes replay exact;
a mismatch is reported as :class:`ReplayMismatchError` (the engine then counts the episode as
failed, and a rerun of the same run retries it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from environments.core.engine import SessionStateError

log = logging.getLogger(__name__)

T = TypeVar("T")
StepResult = tuple[str, float, bool, bool, dict[str, Any]]


class HostLostError(RuntimeError):
    """The host of a session died or stopped answering; its sessions must move elsewhere."""


class NoLiveHostError(RuntimeError):
    """Every host is gone, so no session can be opened."""


class ReplayMismatchError(RuntimeError):
    """Replaying an episode on a new host gave a different observation: the episode cannot be moved."""


class HostedSession(Protocol):
    """One environment session on one host; calls raise :class:`HostLostError` when the host is gone."""

    host: str

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]: ...

    def step(self, action: str) -> StepResult: ...

    def close(self) -> None: ...


class SessionHosts(Protocol):
    """Where sessions live: opens them on the least-loaded live host and learns about dead ones."""

    def open(self) -> HostedSession:
        """A new session on a live host (raises :class:`NoLiveHostError` when none is left)."""
        ...

    def lost(self, session: HostedSession, error: BaseException) -> None:
        """``session``'s host failed with ``error``: stop placing sessions there."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class _EpisodeLog:
    """What the engine has seen of the current episode, enough to rebuild it on another host."""

    seed: int | None
    options: dict[str, Any] | None
    first_observation: str | None = None
    steps: list[tuple[str, str, float]] = field(default_factory=list)  # (action, observation, reward)


@dataclass
class FailoverStats:
    """How often sessions moved; shared by every environment of one provider."""

    recoveries: int = 0
    replayed_steps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, replayed_steps: int) -> None:
        with self._lock:
            self.recoveries += 1
            self.replayed_steps += replayed_steps


class FailoverEnv:
    """A Gymnasium-style environment whose session survives the death of its host (module docstring)."""

    def __init__(self, hosts: SessionHosts, stats: FailoverStats, max_recoveries: int = 3) -> None:
        self._hosts = hosts
        self._stats = stats
        self._max_recoveries = max_recoveries
        self._session: HostedSession | None = None
        self._episode: _EpisodeLog | None = None
        self._session = self._open()

    @property
    def host(self) -> str:
        """Where the session lives now."""
        return self._session.host if self._session is not None else ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._episode = _EpisodeLog(seed, dict(options) if options is not None else None)
        observation, info = self._call(lambda session: session.reset(seed, self._episode.options))
        self._episode.first_observation = observation
        return observation, info

    def step(self, action: str) -> StepResult:
        if self._episode is None or self._episode.first_observation is None:
            raise SessionStateError("no episode is running: call reset() first")
        result = self._call(lambda session: session.step(action))
        self._episode.steps.append((action, result[0], float(result[1])))
        return result

    def close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            session.close()
        except HostLostError:  # nothing left to release on a dead host
            pass

    # -- recovery ---------------------------------------------------------------------------------------
    def _open(self) -> HostedSession:
        for _ in range(self._max_recoveries + 1):
            try:
                return self._hosts.open()
            except HostLostError as exc:  # the chosen host died while opening; hosts.open marked it
                log.warning("opening a session failed: %s; trying another host", exc)
        raise NoLiveHostError(f"could not open a session in {self._max_recoveries + 1} tries")

    def _call(self, fn: Callable[[HostedSession], T]) -> T:
        """``fn`` on the session, moving it (and replaying) up to ``max_recoveries`` times."""
        if self._session is None:
            raise RuntimeError("this environment is closed")
        lost: HostLostError | None = None
        for _ in range(self._max_recoveries + 1):
            try:
                if lost is not None:
                    self._recover(lost)  # a host lost during the replay counts as one more failure
                return fn(self._session)
            except HostLostError as exc:
                lost = exc
        raise lost

    def _recover(self, error: HostLostError) -> None:
        """Move to a live host and replay the episode up to where the engine is."""
        lost = self._session
        self._hosts.lost(lost, error)
        log.warning("session host %s lost (%s): moving the session and replaying %d step(s)", lost.host, error,
                    len(self._episode.steps) if self._episode else 0)
        self._session = self._open()
        episode = self._episode
        if episode is None or episode.first_observation is None:
            self._stats.add(0)
            return  # nothing was played yet: the retried call starts from scratch
        observation, _ = self._session.reset(episode.seed, episode.options)
        _check_replay(observation, episode.first_observation, "reset")
        for index, (action, expected, reward) in enumerate(episode.steps, 1):
            observation, replayed_reward, *_ = self._session.step(action)
            _check_replay(observation, expected, f"step {index}")
            if float(replayed_reward) != reward:
                raise ReplayMismatchError(f"replayed step {index} gave reward {replayed_reward}, not {reward}")
        self._stats.add(len(episode.steps))
        log.info("session moved to %s after %d replayed step(s)", self._session.host, len(episode.steps))


class EnvProviders(Protocol):
    """A ``make_env`` per environment configuration, for a run that plays several (e.g. Ray actors)."""

    def provider(self, env: str, max_steps: int | None = None,
                 env_options: Mapping[str, Any] | None = None) -> Callable[[], Any]: ...


def _check_replay(observation: str, expected: str, where: str) -> None:
    if observation != expected:
        raise ReplayMismatchError(
            f"the environment is not deterministic here: the replayed {where} differs from the original "
            f"({observation[:120]!r} vs {expected[:120]!r}); the episode cannot be moved to another host"
        )


class EnvProvider:
    """The rollout engine's ``make_env`` for sessions on :class:`SessionHosts`.

    ``remote = True`` tells the engine that calls wait on other processes, so it steps the
    environments from its thread pool (``RolloutConfig.env_threads``) and hosts work in parallel.
    Use it as a context manager (or call :meth:`close`) to release the hosts.
    """

    remote = True

    def __init__(self, hosts: SessionHosts, max_recoveries: int = 3) -> None:
        if max_recoveries < 0:
            raise ValueError(f"max_recoveries must be >= 0, got {max_recoveries}")
        self.hosts = hosts
        self.max_recoveries = max_recoveries
        self.stats = FailoverStats()

    def __call__(self) -> FailoverEnv:
        return FailoverEnv(self.hosts, self.stats, self.max_recoveries)

    def describe(self) -> dict[str, Any]:
        """Hosts, placement and how many sessions had to move (for logs and run records)."""
        return {**self.hosts.describe(), "recoveries": self.stats.recoveries,
                "replayed_steps": self.stats.replayed_steps}

    def close(self) -> None:
        self.hosts.close()

    def __enter__(self) -> EnvProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
