"""A :class:`TextSession` that lives on an environment server, spoken to over the JSON API.

The Gymnasium wrapper cannot tell it apart from an in-process session: the same calls, the same
return values, the same exceptions for bad options or bad state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from environments.core.engine import (
    EngineUnavailableError,
    InvalidOptionsError,
    JSONDict,
    SessionStateError,
    StepOutcome,
)

log = logging.getLogger(__name__)


class EnvServerError(RuntimeError):
    """The server answered with an error that is not the caller's options or state."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"environment server error {status} ({kind}): {message}")
        self.status = status
        self.kind = kind


_ERROR_TYPES: dict[str, type[Exception]] = {
    "invalid_options": InvalidOptionsError,
    "bad_state": SessionStateError,
    "engine_unavailable": EngineUnavailableError,
}


class RemoteSession:
    """One session on a remote environment server; opened on construction, closed by :meth:`close`."""

    def __init__(self, base_url: str, timeout_s: float = 120.0, http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = http or requests.Session()
        self._owns_http = http is None
        self.session_id: str = self._call("POST", "/api/sessions", {})["session_id"]
        self._closed = False

    def _call(self, method: str, path: str, payload: JSONDict | None = None) -> JSONDict:
        try:
            response = self._http.request(method, self.base_url + path, json=payload, timeout=self.timeout_s)
        except requests.ConnectionError as exc:
            raise EnvServerError(0, "unreachable", f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                kind, message = str(error["type"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                kind, message = "http_error", response.text[:500]
            if kind in _ERROR_TYPES:
                raise _ERROR_TYPES[kind](message)
            raise EnvServerError(response.status_code, kind, message)
        return response.json()

    def _session_path(self, suffix: str = "") -> str:
        return f"/api/sessions/{self.session_id}{suffix}"

    def reset(self, options: Mapping[str, Any] | None = None) -> tuple[str, JSONDict]:
        body = self._call("POST", self._session_path("/reset"), {"options": dict(options or {})})
        return body["observation"], body["info"]

    def step(self, action: str) -> StepOutcome:
        return StepOutcome.from_json(self._call("POST", self._session_path("/step"), {"action": action}))

    def observation(self) -> str:
        return self._call("GET", self._session_path("/observation"))["observation"]

    def available_actions(self) -> Any:
        return self._call("GET", self._session_path("/actions"))["available_actions"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call("DELETE", self._session_path())
        except EnvServerError as exc:  # already expired or server gone: nothing left to release
            log.debug("closing remote session %s: %s", self.session_id, exc)
        finally:
            if self._owns_http:
                self._http.close()


def server_health(base_url: str, timeout_s: float = 5.0) -> JSONDict:
    """The server's ``/api/health`` document (raises if unreachable)."""
    response = requests.get(base_url.rstrip("/") + "/api/health", timeout=timeout_s)
    response.raise_for_status()
    return response.json()
