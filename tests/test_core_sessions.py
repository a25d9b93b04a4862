"""SessionManager rules: unguessable ids, a hard cap, idle expiry, and honest answers about dead ids."""

from __future__ import annotations

import threading

import pytest

from environments.core.sessions import SessionLimitError, SessionManager, UnknownSessionError
from tests.helpers.sessions import CountingSession


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ids_are_unique_and_unguessable():
    manager = SessionManager(CountingSession, max_sessions=100)
    ids = [manager.create()[0] for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(session_id) >= 24 for session_id in ids)


def test_cap_is_enforced_and_freed_by_close():
    manager = SessionManager(CountingSession, max_sessions=2)
    first, _ = manager.create()
    manager.create()
    with pytest.raises(SessionLimitError, match="full"):
        manager.create()
    manager.close(first)
    manager.create()


def test_closed_and_expired_ids_say_why_and_are_never_reused():
    clock = FakeClock()
    manager = SessionManager(CountingSession, max_sessions=4, idle_timeout_s=10, clock=clock)
    closed_id, _ = manager.create()
    idle_id, idle_session = manager.create()
    busy_id, _ = manager.create()
    manager.close(closed_id)
    clock.now = 8
    manager.run(busy_id, lambda s: s.step("tick"))
    clock.now = 15
    assert manager.expire_idle() == [idle_id]
    assert idle_session.closed
    with pytest.raises(UnknownSessionError, match="expired"):
        manager.run(idle_id, lambda s: s.step("tick"))
    with pytest.raises(UnknownSessionError, match="was closed"):
        manager.run(closed_id, lambda s: s.step("tick"))
    with pytest.raises(UnknownSessionError, match="does not exist"):
        manager.run("made-up", lambda s: s.step("tick"))
    assert manager.run(busy_id, lambda s: s.step("tick")).observation == "tick 2"


def test_concurrent_steps_on_one_session_are_serialised():
    manager = SessionManager(CountingSession)
    session_id, session = manager.create()
    threads = [threading.Thread(target=lambda: [manager.run(session_id, lambda s: s.step("tick")) for _ in range(200)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.steps == 800


def test_failing_factory_does_not_leak_a_slot():
    def broken():
        raise RuntimeError("engine failed to start")

    manager = SessionManager(broken, max_sessions=1)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="engine failed"):
            manager.create()
    assert len(manager) == 0
