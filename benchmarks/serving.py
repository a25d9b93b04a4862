"""What the server benchmarks share: a server in its own process, its memory over time, a lean client.

Not a benchmark itself. The server runs as ``harness env serve`` from a source tree (this checkout,
or a baseline revision unpacked by :func:`baseline_tree`), exactly as an operator starts it; the
client keeps one HTTP/1.1 connection per session so that the client's own cost stays small next to
the server's on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def percentile_ms(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of latencies in seconds, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (an ALFWorld server's workers count)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # exited meanwhile
            continue
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        pending.extend(int(child) for child in children)
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (its own threads; not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process tree's resident memory on a background thread: ``(seconds, MiB)`` pairs."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter() - self._started, tree_rss_mib(self.pid)))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        values = [mib for _, mib in self.samples]
        return {"rss_start_mib": values[0], "rss_peak_mib": max(values), "rss_end_mib": values[-1]}


class ServerProcess:
    """``harness env serve ENV`` in a child process on a free port, started from ``root``."""

    def __init__(self, env: str, root: Path = REPO_ROOT, args: Sequence[str] = (), timeout_s: float = 120.0) -> None:
        command = [sys.executable, "-m", "harness.cli", "env", "serve", env, "--port", "0", *args]
        environ = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(root)}
        # A baseline tree lives elsewhere: point it at this checkout's data (the README's default place).
        environ.setdefault("HARNESS_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data"))
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=root, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.log: list[str] = []
        self.url = self._read_url()
        self.port = int(self.url.rsplit(":", 1)[1])
        self._wait_healthy(timeout_s)
        self.cold_start_s = time.perf_counter() - started

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_url(self) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if match:
                threading.Thread(target=self._drain, daemon=True).start()
                return match.group(0)
        code = self.process.wait()
        raise RuntimeError(f"server exited with {code} before printing its address:\n{''.join(self.log)}")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            with contextlib.suppress(OSError, ApiFailure):
                ApiClient(self.port).call("GET", "/api/health")
                return
            time.sleep(0.01)
        raise RuntimeError(f"server at {self.url} not healthy after {timeout_s} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def baseline_tree(revision: str) -> Iterator[Path]:
    """The source tree of ``revision`` (``git archive``) in a temporary directory, for a side-by-side run."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        archive = subprocess.run(["git", "archive", revision], cwd=REPO_ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp)


class ApiFailure(RuntimeError):
    """An HTTP error status from the server."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


class ApiClient:
    """One keep-alive HTTP/1.1 connection speaking the environment JSON API (not thread-safe)."""

    def __init__(self, port: int, timeout_s: float = 120.0) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        self.session_id = ""

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload)
        self._conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = self._conn.getresponse()
        data = response.read()
        if response.status >= 400:
            raise ApiFailure(response.status, data)
        return json.loads(data)

    def open(self) -> None:
        self.session_id = self.call("POST", "/api/sessions", {})["session_id"]

    def reset(self, options: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/sessions/{self.session_id}/reset", {"options": options})

    def step(self, action: str) -> dict[str, Any]:
        return self.call("POST", f"/api/sessions/{self.session_id}/step", {"action": action})

    def close(self) -> None:
        with contextlib.suppress(OSError, ApiFailure):
            if self.session_id:
                self.call("DELETE", f"/api/sessions/{self.session_id}")
        self._conn.close()
