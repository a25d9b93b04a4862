"""A pool of game worker processes, leased out slot by slot to sessions.

Design (see docs/alfworld.md):

- ``workers`` child interpreters (:func:`~environments.alfworld.worker.launch_worker`, one duplex
  connection each; independent of the launcher's ``__main__``) run the engines; the server process
  only routes. They start at :meth:`WorkerPool.start` or at the first lease. Each worker has
  ``sessions_per_worker`` slots, one engine per slot, so a worker hosts several sessions at once
  without mixing their games. A session takes a *lease* on a slot at its first reset and keeps it,
  so repeated resets of a game hit that worker's memo and its already-loaded engine; new leases go
  to the least-loaded worker.
- One request at a time per worker (a lock per pipe). Each request has a deadline: game starts get
  ``load_timeout_s``, steps ``step_timeout_s``. A worker that misses its deadline is killed and
  replaced; the caller gets :class:`EngineUnavailableError` (HTTP 503), and so does every other
  session that had a game on it, until it resets. A crashed worker is handled the same way.
- After ``games_per_worker`` game starts a worker retires: it takes no new leases, a replacement
  is spawned, its sessions move to other workers at their next reset, and it is stopped once its
  last lease is released. This bounds the memory that long runs accumulate.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from environments.alfworld.worker import WorkerConfig, launch_worker
from environments.core.engine import EngineUnavailableError

log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """The engine inside a worker raised; the worker itself is fine."""


@dataclass(frozen=True)
class PoolSettings:
    """Sizes and deadlines of the worker pool."""

    workers: int = 2
    sessions_per_worker: int = 32
    games_per_worker: int = 200
    load_timeout_s: float = 30.0
    step_timeout_s: float = 30.0
    start_timeout_s: float = 120.0
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    def __post_init__(self) -> None:
        for name in ("workers", "sessions_per_worker", "games_per_worker"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("load_timeout_s", "step_timeout_s", "start_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class _Worker:
    """One worker process as the pool sees it; ``lock`` guards the pipe."""

    def __init__(self, number: int, settings: PoolSettings) -> None:
        self.number = number
        self.process, self.conn = launch_worker(settings.worker)
        self.lock = threading.Lock()
        self.ready = False
        self.free_slots = list(range(settings.sessions_per_worker - 1, -1, -1))
        self.leased: set[int] = set()
        self.games = 0
        self.retiring = False
        self.failure: str | None = None

    @property
    def usable(self) -> bool:
        return self.failure is None and not self.retiring

    def alive(self) -> bool:
        return self.process.poll() is None

    def reap(self, timeout_s: float = 5.0) -> None:
        """Wait for the process to exit, killing it if it has not within ``timeout_s``."""
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)

    def describe(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "pid": self.process.pid,
            "games": self.games,
            "sessions": len(self.leased),
            "retiring": self.retiring,
            "ready": self.ready,
        }


@dataclass(frozen=True)
class Lease:
    """A session's slot on a worker."""

    worker: _Worker
    slot: int


class WorkerPool:
    """Spawns, leases, watches and recycles game workers; safe to use from many threads."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._numbers = 0
        self.counts = {"spawned": 0, "recycled": 0, "killed": 0, "crashed": 0}
        self._closed = False

    def start(self, wait: bool = False) -> None:
        """Spawn the workers now rather than at the first lease; ``wait`` for them to be ready.

        Servers start early so the first client does not wait for imports; an in-process env
        that may never reset (``check_env`` makes and closes several) leaves it to the first lease.
        """
        with self._lock:
            self._top_up()
            workers = list(self._workers)
        if wait:
            for worker in workers:
                self._request(worker, "stats", self.settings.start_timeout_s, {})

    # -- leases ---------------------------------------------------------------------------------

    def acquire(self) -> Lease:
        """A free slot on the least-loaded live worker; 503 if every slot is taken."""
        with self._lock:
            if self._closed:
                raise EngineUnavailableError("the ALFWorld worker pool is shut down")
            for worker in self._workers:
                if worker.usable and not worker.alive():
                    self._mark_failed(worker, f"worker {worker.number} exited (code {worker.process.returncode})")
                    self.counts["crashed"] += 1
            self._top_up()
            candidates = [w for w in self._workers if w.usable and w.free_slots]
            if not candidates:
                capacity = self.settings.workers * self.settings.sessions_per_worker
                raise EngineUnavailableError(
                    f"all {capacity} game slots ({self.settings.workers} workers x "
                    f"{self.settings.sessions_per_worker}) are in use; close a session or try again later"
                )
            worker = min(candidates, key=lambda w: (len(w.leased), w.number))
            slot = worker.free_slots.pop()
            worker.leased.add(slot)
            return Lease(worker, slot)

    def is_stale(self, lease: Lease) -> bool:
        """Whether a new game should move to another worker (this one retired or failed)."""
        return not lease.worker.usable

    def release(self, lease: Lease) -> None:
        worker = lease.worker
        with self._lock:
            worker.leased.discard(lease.slot)
            if worker.failure is None:
                worker.free_slots.append(lease.slot)
            stop = worker.retiring and not worker.leased and worker in self._workers
            if stop:
                self._workers.remove(worker)
        if stop:
            self._stop(worker)

    # -- requests -------------------------------------------------------------------------------

    def call(self, lease: Lease, op: str, timeout_s: float, **args: Any) -> Any:
        """Run ``op`` on the lease's engine; a missed deadline kills the worker (503 to the caller)."""
        result = self._request(lease.worker, op, timeout_s, {"slot": lease.slot, **args})
        if op == "start":
            self._count_game(lease.worker)
        return result

    def _request(self, worker: _Worker, op: str, timeout_s: float, args: dict[str, Any]) -> Any:
        failure: tuple[str, str] | None = None  # (counter, message)
        reply: tuple[str, Any] = ("error", "no reply")
        with worker.lock:
            if worker.failure is not None:
                raise EngineUnavailableError(f"this session's game is gone: {worker.failure}; reset to start again")
            try:
                if not worker.ready:
                    self._await_ready(worker)
                worker.conn.send((op, args))
                if worker.conn.poll(timeout_s):
                    reply = worker.conn.recv()
                else:
                    message = f"worker {worker.number} did not finish {op!r} within {timeout_s:g} s and was killed"
                    failure = ("killed", message)
            except (EOFError, OSError) as exc:
                failure = ("crashed", f"worker {worker.number} failed during {op!r} ({type(exc).__name__}: {exc})")
            if failure is not None:
                self._kill(worker, failure[1])
        if failure is not None:
            with self._lock:
                self.counts[failure[0]] += 1
                self._mark_failed(worker, failure[1])
                self._top_up()
            raise EngineUnavailableError(f"{failure[1]}; reset to try again")
        kind, payload = reply
        if kind == "error":
            raise WorkerError(payload)
        return payload

    def _await_ready(self, worker: _Worker) -> None:
        """Wait for a new worker's hello (caller holds its lock); its import time is not a load."""
        if not worker.conn.poll(self.settings.start_timeout_s):
            raise EOFError(f"no hello from the new process within {self.settings.start_timeout_s:g} s")
        try:
            kind, payload = worker.conn.recv()
        except EOFError:
            worker.reap()
            raise EOFError(
                f"the process exited with code {worker.process.returncode} before it was ready; "
                "its traceback is on the server's standard error"
            ) from None
        if kind != "ready":
            raise EOFError(str(payload))
        worker.ready = True
        log.info("ALFWorld worker %d ready (pid %s)", worker.number, payload["pid"])

    def _count_game(self, worker: _Worker) -> None:
        with self._lock:
            worker.games += 1
            if worker.games >= self.settings.games_per_worker and worker.usable:
                worker.retiring = True
                self.counts["recycled"] += 1
                log.info("ALFWorld worker %d retires after %d games", worker.number, worker.games)
                self._top_up()

    # -- process bookkeeping (callers hold self._lock unless noted) -----------------------------

    def _top_up(self) -> None:
        """Spawn workers until ``workers`` of them take new leases."""
        while not self._closed and sum(w.usable for w in self._workers) < self.settings.workers:
            self._numbers += 1
            self._workers.append(_Worker(self._numbers, self.settings))
            self.counts["spawned"] += 1

    def _mark_failed(self, worker: _Worker, failure: str) -> None:
        worker.failure = worker.failure or failure
        if worker in self._workers:
            self._workers.remove(worker)
            log.warning("ALFWorld %s", failure)

    @staticmethod
    def _kill(worker: _Worker, failure: str) -> None:
        """Stop a worker at once (caller holds the worker's lock)."""
        worker.failure = failure
        worker.process.kill()
        worker.reap()
        worker.conn.close()

    @staticmethod
    def _stop(worker: _Worker) -> None:
        """Ask a worker to exit, and kill it if it does not (takes the worker's lock)."""
        with worker.lock:
            worker.failure = worker.failure or "stopped"
            try:
                worker.conn.send(("shutdown", {}))
            except OSError:
                pass
            worker.reap()
            worker.conn.close()

    # -- introspection and shutdown -------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Pool-side facts (no worker round trip, so health checks never wait on a busy worker)."""
        with self._lock:
            return {
                "workers": [w.describe() for w in self._workers],
                "capacity": self.settings.workers * self.settings.sessions_per_worker,
                **self.counts,
            }

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each live worker's own report (pid, RSS, games, memo hits); waits for busy workers."""
        with self._lock:
            workers = [w for w in self._workers if w.failure is None]
        stats = []
        for worker in workers:
            try:
                stats.append(self._request(worker, "stats", self.settings.step_timeout_s, {}))
            except EngineUnavailableError as exc:
                log.warning("no stats from worker %d: %s", worker.number, exc)
        return stats

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker.failure is None:
                self._stop(worker)
