"""`harness env …` end to end: the real CLI in a subprocess, a real server on a real socket."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

HARNESS = [sys.executable, "-m", "harness.cli"]
REPO = Path(__file__).resolve().parents[1]


def test_env_list_shows_both_environments():
    out = subprocess.run([*HARNESS, "env", "list"], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    assert "webshop" in out and "harness/WebShop-v0" in out
    assert "alfworld" in out and "harness/ALFWorld-v0" in out


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a non-interactive shell starts


@pytest.mark.parametrize(("stop_signal", "launch"), [
    (signal.SIGINT, None),
    (signal.SIGINT, _ignore_sigint),  # Ctrl-C must still stop a server whose launcher ignored SIGINT
    (signal.SIGTERM, None),  # docker stop, kill
], ids=["sigint", "sigint-inherited-ignored", "sigterm"])
def test_serve_webshop_answers_and_stops_on_interrupt(stop_signal, launch):
    proc = subprocess.Popen([*HARNESS, "env", "serve", "webshop", "--port", "0", "--max-sessions", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"}, preexec_fn=launch)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "server exited before printing its address"
            match = re.search(r"http://127\.0\.0\.1:\d+", line)
            url = match.group(0) if match else None
        health = requests.get(url + "/api/health", timeout=10).json()
        assert health["env"] == "webshop" and health["max_sessions"] == 3
        created = requests.post(url + "/api/sessions", json={"reset": {"goal_index": 0}}, timeout=30).json()
        assert "Instruction:" in created["observation"]
        assert requests.get(url + "/", timeout=10).status_code in (200, 302)  # the human shop is mounted
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_bad_option_and_unknown_env_are_clear_errors():
    unknown = subprocess.run([*HARNESS, "env", "serve", "nowhere"], capture_output=True, text=True, cwd=REPO)
    assert unknown.returncode != 0 and "unknown environment 'nowhere'" in unknown.stdout + unknown.stderr
    bad = subprocess.run([*HARNESS, "env", "serve", "webshop", "-o", "novalue"], capture_output=True, text=True,
                         cwd=REPO)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stdout + bad.stderr


def test_play_webshop_in_the_terminal():
    script = "search[long lasting bottle]\nclick[next >]\nquit\n"
    result = subprocess.run([*HARNESS, "env", "play", "webshop", "--task", '{"goal_index": 0}'], input=script,
                            capture_output=True, text=True, timeout=120, cwd=REPO, env={"COLUMNS": "200",
                                                                                        "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the console wraps long observations
    assert "Page 1 (Total results: 50)" in text and "Page 2 (Total results: 50)" in text
