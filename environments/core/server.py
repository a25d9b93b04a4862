"""The JSON API every environment server speaks, and the WSGI plumbing to serve it.

One implementation for all engines: the engine only supplies a session factory. Bad input never
reaches the engine (sizes, types and JSON are checked here) and never takes the server down: every
error is a JSON body ``{"error": {"type": ..., "message": ...}}`` with a 4xx code, or 500 for a bug.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask, WSGITask
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from environments.core.engine import (
    EngineUnavailableError,
    InvalidOptionsError,
    SessionFactory,
    SessionStateError,
    TextSession,
)
from environments.core.sessions import SessionLimitError, SessionManager, UnknownSessionError

log = logging.getLogger(__name__)

API_PREFIX = "/api"


@dataclass(frozen=True)
class ServerSettings:
    """How a server binds and how much it accepts; the defaults are safe on a shared machine."""

    host: str = "127.0.0.1"
    port: int = 0
    max_sessions: int = 64
    idle_timeout_s: float = 900.0
    max_request_bytes: int = 64 * 1024
    max_action_chars: int = 1000
    threads: int = 16
    wsgi: str = "waitress"

    def __post_init__(self) -> None:
        if self.wsgi not in WSGI_SERVERS:
            raise ValueError(f"unknown wsgi server {self.wsgi!r}; choose one of {sorted(WSGI_SERVERS)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")


class ApiError(Exception):
    """An error with an HTTP status, rendered as the standard JSON error body."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def _error(status: int, kind: str, message: str):
    response = jsonify({"error": {"type": kind, "message": message}})
    response.status_code = status
    return response


def _sessions() -> SessionManager:
    return current_app.extensions["harness_sessions"]


def _settings() -> ServerSettings:
    return current_app.extensions["harness_settings"]


def _json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body counts as ``{}``."""
    if not request.get_data(cache=True):
        return {}
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "malformed_json", "request body is not valid JSON")
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    return payload


def _options(payload: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    options = payload.get(key)
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "bad_request", f"'{key}' must be a JSON object")
    return options


def _action(payload: Mapping[str, Any]) -> str:
    if "action" not in payload:
        raise ApiError(400, "bad_request", "missing 'action'")
    action = payload["action"]
    if not isinstance(action, str):
        raise ApiError(400, "bad_action", f"'action' must be a string, got {type(action).__name__}")
    limit = _settings().max_action_chars
    if len(action) > limit:
        raise ApiError(400, "bad_action", f"'action' is {len(action)} characters; the limit is {limit}")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in action):
        raise ApiError(400, "bad_action", "'action' contains control characters")
    return action


def _reset_payload(session: TextSession, options: dict[str, Any] | None) -> dict[str, Any]:
    observation, info = session.reset(options)
    return {"observation": observation, "info": info}


def build_api() -> Blueprint:
    """The session API; mounted under ``/api`` by :func:`create_app`."""
    api = Blueprint("harness_api", __name__)

    @api.get("/health")
    def health():
        app = current_app
        return jsonify(
            status="ok",
            env=app.extensions["harness_env_name"],
            sessions=len(_sessions()),
            max_sessions=_sessions().max_sessions,
            engine=app.extensions["harness_factory"].describe(),
        )

    @api.post("/sessions")
    def create_session():
        payload = _json_body()
        reset_options = _options(payload, "reset")
        session_id, session = _sessions().create()
        body: dict[str, Any] = {"session_id": session_id}
        if "reset" in payload:
            try:
                body.update(_sessions().run(session_id, lambda s: _reset_payload(s, reset_options)))
            except Exception:
                _sessions().close(session_id, reason="was closed because its first reset failed")
                raise
        return jsonify(body), 201

    @api.post("/sessions/<session_id>/reset")
    def reset(session_id: str):
        options = _options(_json_body(), "options")
        return jsonify(_sessions().run(session_id, lambda s: _reset_payload(s, options)))

    @api.post("/sessions/<session_id>/step")
    def step(session_id: str):
        payload = _json_body()
        action = _action(payload)
        strict = payload.get("strict", False)
        if not isinstance(strict, bool):
            raise ApiError(400, "bad_request", f"'strict' must be true or false, got {json.dumps(strict)}")
        outcome = _sessions().run(session_id, lambda s: s.step(action))
        if strict and outcome.info.get("action_valid") is False:
            raise ApiError(422, "invalid_action", f"the environment rejected the action {action!r}")
        return jsonify(outcome.to_json())

    @api.get("/sessions/<session_id>/observation")
    def observation(session_id: str):
        return jsonify(observation=_sessions().run(session_id, lambda s: s.observation()))

    @api.get("/sessions/<session_id>/actions")
    def actions(session_id: str):
        return jsonify(available_actions=_sessions().run(session_id, lambda s: s.available_actions()))

    @api.delete("/sessions/<session_id>")
    def close(session_id: str):
        _sessions().close(session_id)
        return jsonify(closed=session_id)

    return api


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return _error(exc.status, exc.kind, exc.message)

    @app.errorhandler(UnknownSessionError)
    def unknown_session(exc: UnknownSessionError):
        status = 404 if exc.reason == "does not exist" else 410
        return _error(status, "unknown_session", str(exc))

    @app.errorhandler(SessionLimitError)
    def full(exc: SessionLimitError):
        return _error(429, "too_many_sessions", str(exc))

    @app.errorhandler(InvalidOptionsError)
    def bad_options(exc: InvalidOptionsError):
        return _error(400, "invalid_options", str(exc))

    @app.errorhandler(SessionStateError)
    def bad_state(exc: SessionStateError):
        return _error(409, "bad_state", str(exc))

    @app.errorhandler(EngineUnavailableError)
    def unavailable(exc: EngineUnavailableError):
        return _error(503, "engine_unavailable", str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if not request.path.startswith(API_PREFIX):
            return exc
        kind = "payload_too_large" if exc.code == 413 else (exc.name or "http_error").lower().replace(" ", "_")
        return _error(exc.code or 500, kind, exc.description or exc.name)

    @app.errorhandler(Exception)
    def internal(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")


def create_app(
    env_name: str,
    factory: SessionFactory,
    settings: ServerSettings | None = None,
    blueprints: Iterable[Blueprint] = (),
) -> Flask:
    """A Flask app serving ``factory``'s sessions over the JSON API, plus any engine-specific pages."""
    settings = settings or ServerSettings()
    app = Flask(f"harness-{env_name}")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.extensions["harness_env_name"] = env_name
    app.extensions["harness_settings"] = settings
    app.extensions["harness_factory"] = factory
    app.extensions["harness_sessions"] = SessionManager(
        factory.new_session, max_sessions=settings.max_sessions, idle_timeout_s=settings.idle_timeout_s
    )
    app.register_blueprint(build_api(), url_prefix=API_PREFIX)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    _register_error_handlers(app)
    return app


def session_manager(app: Flask) -> SessionManager:
    return app.extensions["harness_sessions"]


class RunningServer:
    """A server bound to a socket and serving on a background thread; ``url`` is known at once."""

    def __init__(self, app: Flask, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        self._server = WSGI_SERVERS[settings.wsgi](app, settings)
        self.port: int = self._server.port
        self.url = f"http://{settings.host}:{self.port}"
        self._stop = threading.Event()
        self._warmed = False
        self._threads = [
            threading.Thread(target=self._server.serve, name=f"{app.name}-wsgi", daemon=True),
            threading.Thread(target=self._sweep_idle, name=f"{app.name}-expiry", daemon=True),
        ]

    def start(self) -> RunningServer:
        self.warm_up()
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (the CLI path)."""
        self.warm_up()
        self._threads[1].start()
        try:
            self._server.serve()
        finally:
            self.stop()

    def warm_up(self) -> None:
        """Let the engine load what its first requests would all wait for, before serving any (once).

        The socket is already bound, so clients that connect meanwhile wait in its backlog rather
        than being refused; a fresh server's first burst is then as fast as its steady state. A
        launcher may call it before announcing the address, so that the address answers at once.
        """
        warm_up = getattr(self.app.extensions["harness_factory"], "warm_up", None)
        if warm_up is None or self._warmed:
            return
        self._warmed = True
        started = time.perf_counter()
        try:
            warm_up()
        except Exception:  # the requests that need it will report the failure to their clients
            log.exception("warming up the %s engine failed", self.app.name)
        log.info("%s engine warmed up in %.1f s", self.app.name, time.perf_counter() - started)

    def _sweep_idle(self) -> None:
        interval = min(30.0, max(0.05, self.settings.idle_timeout_s / 4))
        while not self._stop.wait(interval):
            session_manager(self.app).expire_idle()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        session_manager(self.app).close_all()
        self.app.extensions["harness_factory"].close()

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _WaitressServer:
    """waitress: a production multi-threaded WSGI server (pure Python, no fork)."""

    def __init__(self, app: Flask, settings: ServerSettings) -> None:
        # waitress warns "Task queue depth is N" for every request that waits for a thread: under a
        # load of more sessions than threads that is every request, and the CLI's rich log handler
        # then spent a quarter of the server's time rendering those lines. Queueing is the design.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._server = create_server(
            app,
            ident="harness",
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            connection_limit=max(100, settings.max_sessions * 4),
            channel_timeout=120,
            # Flask enforces max_request_bytes with a JSON 413; waitress is only the backstop for floods.
            max_request_body_size=max(1 << 20, 4 * settings.max_request_bytes),
        )
        self._server.channel_class = _waitress_channel()
        self.port = int(self._server.effective_port)

    def serve(self) -> None:
        self._server.run()

    def shutdown(self) -> None:
        self._server.close()


@cache
def _waitress_channel() -> type:
    """waitress's connection class, answering its own refusals in the API's JSON error format,
    sending each response in one write and leaving the sending to the request thread while it serves.

    waitress refuses some requests before the app sees them (a body over its size limit: 413;
    malformed or oversized headers: 400/431; an unsupported transfer coding: 501; a crash: 500)
    with a plain-text page; this keeps the promise that every error is ``{"error": {...}}``.
    """
    class JsonErrorTask(ErrorTask):
        def execute(self) -> None:
            error = self.request.error
            kind = _WAITRESS_ERROR_KINDS.get(error.code, "http_error")
            body = json.dumps({"error": {"type": kind, "message": f"{error.reason}: {error.body}"}}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class OneWriteTask(WSGITask):
        """Hands a response with a known length to the socket in one write, headers and body together.

        waitress writes the headers, then the body: two sends, and two wake-ups of a client that
        reads the headers first. On loopback the receiver's TCP work runs in the sender's system
        call, so each send is the server's CPU. Every other case (streamed, chunked, no body) is
        waitress's own.
        """

        def write(self, data: bytes) -> None:
            whole = self.complete and not self.wrote_header and data and self.content_length == len(data)
            if not (whole and self.has_body):
                super().write(data)
                return
            header = self.build_response_header()
            self.wrote_header = True
            self.content_bytes_written += len(data)
            self.channel.write_soon(header + data)

    class HarnessChannel(HTTPChannel):
        task_class = OneWriteTask
        error_task_class = JsonErrorTask

        def writable(self) -> bool:
            """Not while a request thread serves this connection: that thread sends what it writes.

            waitress's loop otherwise wakes for such a socket (always writable) whenever bytes sit in
            its buffer for the moment the request thread is inside ``send``, finds the buffer locked,
            and selects again at once: a busy loop holding the interpreter lock that the sender needs
            to finish. What the thread cannot send at once goes with its next write or, once it is
            done, from the loop; buffers past the high watermark (the thread waits for the loop) and
            closing connections stay the loop's.
            """
            if self.requests and not self.will_close and self.total_outbufs_len <= self.adj.outbuf_high_watermark:
                return False
            return super().writable()

    return HarnessChannel


_WAITRESS_ERROR_KINDS = {
    400: "bad_request",
    413: "payload_too_large",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


class _WerkzeugServer:
    """werkzeug's threaded development server, for debugging."""

    def __init__(self, app: Flask, settings: ServerSettings) -> None:
        self._server = make_server(settings.host, settings.port, app, threaded=True)
        self.port = int(self._server.server_port)

    def serve(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()


WSGI_SERVERS: dict[str, Callable[[Flask, ServerSettings], Any]] = {
    "waitress": _WaitressServer,
    "werkzeug": _WerkzeugServer,
}
