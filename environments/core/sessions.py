"""Explicit, bounded, expiring sessions for the environment servers.

Peers recycle session ids silently or let them grow without bound; here every session id is a
fresh unguessable token, the number of live sessions is capped (callers get a clear "full" error),
idle sessions expire, and an expired or closed id is remembered so clients learn what happened to it
instead of reaching someone else's game.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from environments.core.engine import TextSession

log = logging.getLogger(__name__)


class SessionLimitError(RuntimeError):
    """The server already hosts its maximum number of sessions."""


class UnknownSessionError(KeyError):
    """No live session has this id; ``reason`` says whether it expired, was closed or never existed."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id
        self.reason = reason

    def __str__(self) -> str:
        return f"session {self.session_id!r} {self.reason}"


@dataclass
class _Slot:
    session: TextSession
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionManager:
    """Thread-safe registry of live sessions with a cap and idle expiry.

    A per-session lock serialises concurrent requests to one session (a game is not re-entrant),
    while different sessions proceed in parallel.
    """

    _ENDED_MEMORY = 10_000

    def __init__(
        self,
        factory: Callable[[], TextSession],
        max_sessions: int = 64,
        idle_timeout_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")
        self._factory = factory
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def create(self) -> tuple[str, TextSession]:
        """Open a new session; raises :class:`SessionLimitError` when the cap is reached."""
        self.expire_idle()
        with self._lock:
            if len(self._slots) >= self.max_sessions:
                raise SessionLimitError(
                    f"server is full: {self.max_sessions} live sessions; close one or wait for idle ones "
                    f"to expire after {self.idle_timeout_s:.0f} s"
                )
            session_id = secrets.token_urlsafe(18)
            # Reserve the slot before the (possibly slow) engine start so the cap holds under races.
            self._slots[session_id] = _Slot(session=_PENDING, last_used=self._clock())
        try:
            session = self._factory()
        except BaseException:
            with self._lock:
                del self._slots[session_id]
            raise
        with self._lock:
            self._slots[session_id].session = session
        return session_id, session

    def run(self, session_id: str, fn: Callable[[TextSession], object]) -> object:
        """Call ``fn`` with the session while holding its lock, and mark it as used."""
        slot = self._get(session_id)
        with slot.lock:
            if self._slots.get(session_id) is not slot:
                raise UnknownSessionError(session_id, self._ended.get(session_id, "was closed"))
            try:
                return fn(slot.session)
            finally:
                slot.last_used = self._clock()

    def close(self, session_id: str, reason: str = "was closed") -> None:
        slot = self._get(session_id)
        with slot.lock, self._lock:
            self._retire(session_id, reason)
        self._safe_close(slot.session, session_id)

    def expire_idle(self) -> list[str]:
        """Close every session idle for longer than the timeout; returns the expired ids."""
        now = self._clock()
        expired: list[tuple[str, _Slot]] = []
        with self._lock:
            for session_id, slot in list(self._slots.items()):
                if slot.session is _PENDING or now - slot.last_used <= self.idle_timeout_s:
                    continue
                if not slot.lock.acquire(blocking=False):
                    continue  # in use right now, so not idle
                try:
                    self._retire(session_id, f"expired after {self.idle_timeout_s:.0f} s idle")
                    expired.append((session_id, slot))
                finally:
                    slot.lock.release()
        for session_id, slot in expired:
            log.info("session %s expired", session_id)
            self._safe_close(slot.session, session_id)
        return [session_id for session_id, _ in expired]

    def close_all(self) -> None:
        with self._lock:
            ids = list(self._slots)
        for session_id in ids:
            try:
                self.close(session_id, reason="was closed at server shutdown")
            except UnknownSessionError:
                pass

    def _get(self, session_id: str) -> _Slot:
        with self._lock:
            slot = self._slots.get(session_id)
            if slot is None or slot.session is _PENDING:
                raise UnknownSessionError(session_id, self._ended.get(session_id, "does not exist"))
            return slot

    def _retire(self, session_id: str, reason: str) -> None:
        """Drop a slot and remember why (caller holds ``self._lock``)."""
        self._slots.pop(session_id, None)
        self._ended[session_id] = reason
        while len(self._ended) > self._ENDED_MEMORY:
            self._ended.popitem(last=False)

    @staticmethod
    def _safe_close(session: TextSession, session_id: str) -> None:
        try:
            session.close()
        except Exception:  # a broken engine must not take the server down with it
            log.exception("closing session %s failed", session_id)


class _Pending:
    """Placeholder for a session whose engine is still starting."""

    def __repr__(self) -> str:
        return "<pending session>"


_PENDING: TextSession = _Pending()  # type: ignore[assignment]
