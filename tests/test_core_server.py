"""The shared JSON API over a real socket: every kind of bad input gets a 4xx JSON error and the
server keeps serving; remote sessions behave like local ones."""

from __future__ import annotations

import time

import pytest
import requests

from environments.core.client import EnvServerError, RemoteSession
from environments.core.engine import InvalidOptionsError
from environments.core.server import RunningServer, ServerSettings, create_app
from tests.test_core_sessions import CountingSession


class CountingFactory:
    def __init__(self) -> None:
        self.closed = False

    def new_session(self):
        return StrictCountingSession()

    def describe(self):
        return {"kind": "counter"}

    def close(self):
        self.closed = True


class StrictCountingSession(CountingSession):
    def reset(self, options=None):
        if options and "bad" in options:
            raise InvalidOptionsError("option 'bad' is not allowed")
        if options and "crash" in options:
            raise ZeroDivisionError("engine bug")
        return super().reset(options)


@pytest.fixture()
def server():
    settings = ServerSettings(port=0, max_sessions=2, idle_timeout_s=0.5, max_request_bytes=2048, threads=4)
    factory = CountingFactory()
    with RunningServer(create_app("counter", factory, settings), settings) as running:
        yield running
    assert factory.closed


def _error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    return body["error"]["type"]


def _healthy(server) -> None:
    assert requests.get(server.url + "/api/health", timeout=5).json()["status"] == "ok"


def test_session_round_trip(server):
    created = requests.post(server.url + "/api/sessions", json={"reset": {}}, timeout=5)
    assert created.status_code == 201
    body = created.json()
    assert body["observation"] == "start" and body["info"]["available_actions"] == ["tick"]
    sid = body["session_id"]
    step = requests.post(f"{server.url}/api/sessions/{sid}/step", json={"action": "tick"}, timeout=5).json()
    assert step == {"observation": "tick 1", "reward": 0.0, "terminated": False, "info": {"action_valid": True}}
    assert requests.get(f"{server.url}/api/sessions/{sid}/observation", timeout=5).json() == {"observation": "tick 1"}
    assert requests.get(f"{server.url}/api/sessions/{sid}/actions", timeout=5).json() == {"available_actions": ["tick"]}
    assert requests.delete(f"{server.url}/api/sessions/{sid}", timeout=5).status_code == 200
    assert _error(requests.get(f"{server.url}/api/sessions/{sid}/observation", timeout=5), 410) == "unknown_session"


def test_bad_input_gets_json_errors_and_server_keeps_serving(server):
    url = server.url + "/api/sessions"
    sid = requests.post(url, json={}, timeout=5).json()["session_id"]
    step = f"{url}/{sid}/step"
    cases = [
        (requests.post(url, data="{not json", headers={"Content-Type": "application/json"}, timeout=5), 400,
         "malformed_json"),
        (requests.post(url, json=[1, 2], timeout=5), 400, "bad_request"),
        (requests.post(step, json={"action": 7}, timeout=5), 400, "bad_action"),
        (requests.post(step, json={}, timeout=5), 400, "bad_request"),
        (requests.post(step, json={"action": "x" * 1500}, timeout=5), 400, "bad_action"),
        (requests.post(step, json={"action": "x" * 3000}, timeout=5), 413, "payload_too_large"),
        (requests.post(step, json={"action": "a\x00b"}, timeout=5), 400, "bad_action"),
        (requests.post(step, json={"action": "nope", "strict": True}, timeout=5), 422, "invalid_action"),
        (requests.post(f"{url}/{sid}/reset", json={"options": {"bad": 1}}, timeout=5), 400, "invalid_options"),
        (requests.post(f"{url}/{sid}/reset", json={"options": "text"}, timeout=5), 400, "bad_request"),
        (requests.post(f"{url}/no-such-id/step", json={"action": "tick"}, timeout=5), 404, "unknown_session"),
        (requests.post(f"{url}/{sid}/reset", json={"options": {"crash": 1}}, timeout=5), 500, "internal_error"),
        (requests.get(server.url + "/api/nowhere", timeout=5), 404, "not_found"),
    ]
    for response, status, kind in cases:
        assert _error(response, status) == kind
        _healthy(server)
    # the session survived all of it
    assert requests.post(step, json={"action": "tick"}, timeout=5).json()["observation"] == "tick 2"


def test_cap_and_idle_expiry(server):
    url = server.url + "/api/sessions"
    first = requests.post(url, json={}, timeout=5).json()["session_id"]
    requests.post(url, json={}, timeout=5)
    assert _error(requests.post(url, json={}, timeout=5), 429) == "too_many_sessions"
    deadline = time.monotonic() + 10
    while requests.get(server.url + "/api/health", timeout=5).json()["sessions"]:  # the sweeper expires them
        assert time.monotonic() < deadline, "idle sessions never expired"
        time.sleep(0.05)
    response = requests.get(f"{url}/{first}/observation", timeout=5)
    assert _error(response, 410) == "unknown_session" and "expired" in response.json()["error"]["message"]
    assert requests.post(url, json={}, timeout=5).status_code == 201


def test_remote_session_maps_errors(server):
    session = RemoteSession(server.url)
    assert session.reset({}) == ("start", {"available_actions": ["tick"]})
    assert session.step("tick").observation == "tick 1"
    with pytest.raises(InvalidOptionsError, match="not allowed"):
        session.reset({"bad": True})
    session.close()
    session.close()  # idempotent
    with pytest.raises(EnvServerError, match="unreachable"):
        RemoteSession("http://127.0.0.1:9", timeout_s=2)
