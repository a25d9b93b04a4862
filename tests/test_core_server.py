"""The shared JSON API over a real socket: every kind of bad input gets a 4xx JSON error and the
server keeps serving; remote sessions behave like local ones."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
from flask import Blueprint, Response
from waitress import wasyncore
from waitress.channel import HTTPChannel

from environments.core.client import EnvServerError, RemoteSession
from environments.core.engine import InvalidOptionsError
from environments.core.server import RunningServer, ServerSettings, create_app
from tests.helpers.sessions import CountingSession


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


@pytest.mark.parametrize("strict", ["false", "true", [1], 1, 0, None, {}])
def test_strict_must_be_a_boolean(server, strict):
    sid = requests.post(server.url + "/api/sessions", json={"reset": {}}, timeout=5).json()["session_id"]
    step = {"action": "tick", "strict": strict}
    response = requests.post(f"{server.url}/api/sessions/{sid}/step", json=step, timeout=5)
    assert _error(response, 400) == "bad_request"
    assert "'strict' must be true or false" in response.json()["error"]["message"]
    # the refused step did not happen
    assert requests.get(f"{server.url}/api/sessions/{sid}/observation", timeout=5).json() == {"observation": "tick 0"}
    assert requests.delete(f"{server.url}/api/sessions/{sid}", timeout=5).status_code == 200


def _raw_exchange(server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes over a real socket and read the whole response. The server closes the
    connection after a refusal, with the rest of the body unread: the kernel then resets it, after
    the response has arrived."""
    data = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        try:
            conn.sendall(request)
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            assert data, "reset before any response"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_wsgi_level_refusals_are_json_too(server):
    """Refusals waitress makes before the app runs keep the JSON error format."""
    sid = requests.post(server.url + "/api/sessions", json={}, timeout=5).json()["session_id"]
    path = f"/api/sessions/{sid}/step"
    # A body over waitress's 1 MiB backstop, announced by Content-Length: refused before it is read.
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {2 << 20}\r\n\r\n"
    status, headers, body = _raw_exchange(server, head.encode() + b'{"action": "')
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "payload_too_large"
    # The same through an ordinary client that sends the whole body.
    response = requests.post(server.url + path, data=b'{"action": "' + b"x" * (2 << 20) + b'"}', timeout=10)
    assert _error(response, 413) == "payload_too_large"
    # A chunked body that grows past the limit, with no length announced.
    chunk = b"x" * (256 << 10)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, headers, body = _raw_exchange(server, head.encode() + chunked)
    assert status == 413 and json.loads(body)["error"]["type"] == "payload_too_large"
    # Malformed HTTP and an unsupported transfer coding.
    head = b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n"
    status, headers, body = _raw_exchange(server, head)
    assert status == 400 and json.loads(body)["error"]["type"] == "bad_request"
    head = b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    status, headers, body = _raw_exchange(server, head)
    assert status == 501 and json.loads(body)["error"]["type"] == "not_implemented"
    _healthy(server)
    assert requests.post(server.url + path, json={"action": "tick"}, timeout=5).json()["observation"] == "tick 1"


class SlowWarmFactory(CountingFactory):
    """Takes a while to warm up, and remembers whether it had when each session was made."""

    def __init__(self) -> None:
        super().__init__()
        self.warm = False

    def warm_up(self) -> None:
        time.sleep(0.5)
        self.warm = True

    def new_session(self):
        assert self.warm, "a session was made before the warm-up finished"
        return super().new_session()


def test_warm_up_runs_before_serving_while_clients_wait():
    settings = ServerSettings(port=0, threads=2)
    factory = SlowWarmFactory()
    server = RunningServer(create_app("counter", factory, settings), settings)  # bound, not serving yet
    answers: list[int] = []
    early = threading.Thread(
        target=lambda: answers.append(requests.post(server.url + "/api/sessions", json={}, timeout=30).status_code)
    )
    early.start()  # connects during the warm-up: it waits in the backlog rather than being refused
    with server:  # starts it: the warm-up, then serving
        early.join(30)
        assert factory.warm and answers == [201]


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


def test_a_response_leaves_in_one_send(server, monkeypatch):
    """Headers and body go out together: a second send per response cost the server a loopback
    delivery and the client a wake-up (benchmarks/bench_webshop_load.py at 64 sessions)."""
    sends: list[bytes] = []
    original = wasyncore.dispatcher.send

    def counted(channel, data, do_close=True):
        if isinstance(channel, HTTPChannel):
            sends.append(bytes(data))
        return original(channel, data, do_close)

    monkeypatch.setattr(wasyncore.dispatcher, "send", counted)
    session = requests.Session()
    sid = session.post(server.url + "/api/sessions", json={"reset": {}}, timeout=5).json()["session_id"]
    sends.clear()
    for _ in range(3):
        assert session.post(f"{server.url}/api/sessions/{sid}/step", json={"action": "tick"}, timeout=5).ok
    assert len(sends) == 3 and all(data.startswith(b"HTTP/1.1 200") and data.endswith(b"}\n") for data in sends)


def _big_pages() -> Blueprint:
    pages = Blueprint("big", __name__)
    body = bytes(range(256)) * (24 * 1024)  # 6 MiB: more than loopback's socket buffers take at once

    @pages.get("/whole")
    def whole():
        return Response(body, mimetype="application/octet-stream")

    @pages.get("/streamed")
    def streamed():
        return Response((body[i : i + 65536] for i in range(0, len(body), 65536)), mimetype="application/octet-stream")

    return pages


@pytest.mark.parametrize("path", ["/whole", "/streamed"])
def test_responses_larger_than_the_socket_buffers_arrive_whole_to_a_slow_reader(path):
    """What a request thread cannot send at once, the loop sends once the thread is done (or the
    thread itself on its next write): nothing is held back while a request is being served."""
    settings = ServerSettings(port=0, threads=2)
    app = create_app("counter", CountingFactory(), settings, blueprints=[_big_pages()])
    with RunningServer(app, settings) as server, socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.3)  # the server fills the socket's buffers and has to wait for this reader
        received = bytearray()
        while len(received) < 6 * 1024 * 1024 or (path == "/streamed" and not received.endswith(b"0\r\n\r\n")):
            chunk = sock.recv(1 << 20)
            assert chunk, f"connection closed after {len(received)} bytes"
            received += chunk
        head, _, payload = bytes(received).partition(b"\r\n\r\n")
        if path == "/streamed":
            assert b"Transfer-Encoding: chunked" in head
            payload = _unchunked(payload)
        assert head.startswith(b"HTTP/1.1 200") and payload == bytes(range(256)) * (24 * 1024)


def _unchunked(data: bytes) -> bytes:
    body, at = bytearray(), 0
    while True:
        size_end = data.index(b"\r\n", at)
        size = int(data[at:size_end], 16)
        if size == 0:
            return bytes(body)
        body += data[size_end + 2 : size_end + 2 + size]
        at = size_end + 2 + size + 2
