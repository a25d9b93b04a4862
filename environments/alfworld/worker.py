"""The game worker process: a few engines, the memos, and a request loop on a pipe.

The server never runs the engine itself. Each worker is its own interpreter, started as
``python -m environments.alfworld.worker FD CONFIG`` (see :func:`launch_worker`) rather than with
``multiprocessing``'s spawn, which re-imports the launcher's ``__main__`` in every child and so fails
for a script read from standard input (``python - <<EOF``), a notebook cell or ``python -c``.
The worker imports textworld,
installs the memos (:mod:`environments.alfworld.memo`) and answers requests ``(op, args)`` with
``("ok", result)`` or ``("error", message)``. A worker holds one engine per *slot*; the pool
(:mod:`environments.alfworld.pool`) leases a slot to a session, so several sessions share a
process without sharing game state, and engines are reused from game to game.
Only plain data crosses the pipe, and only from the server's own code: clients never reach it.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from environments.alfworld import memo
from environments.alfworld.engine import GameEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to know; passed to the child as JSON on its command line."""

    memoise: bool = True
    disk_cache_dir: str | None = None


def rss_mb() -> float:
    """This process's resident set size in MiB (peak size where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class WorkerHost:
    """The state of one worker: engines by slot, memos, and counters."""

    def __init__(self, config: WorkerConfig) -> None:
        disk_dir = Path(config.disk_cache_dir) if config.disk_cache_dir else None
        self._memos = memo.install(disk_dir) if config.memoise else ()
        self._engines: dict[int, Any] = {}
        self.games = 0
        self.ops: dict[str, Callable[..., Any]] = {"start": self.start, "step": self.step, "stats": self.stats}

    def _engine(self, slot: int) -> Any:
        if slot not in self._engines:
            self._engines[slot] = GameEngine()
        return self._engines[slot]

    def start(self, slot: int, path: str) -> dict[str, Any]:
        self.games += 1
        return self._engine(slot).start(path)

    def step(self, slot: int, command: str) -> dict[str, Any]:
        if slot not in self._engines:
            raise RuntimeError(f"slot {slot} has no game")
        return self._engines[slot].step(command)

    def stats(self) -> dict[str, Any]:
        names = ("translation", "grammar", "query")
        return {
            "pid": os.getpid(),
            "rss_mb": round(rss_mb(), 1),
            "cpu_s": time.process_time(),
            "games": self.games,
            "loads": sum(engine.loads for engine in self._engines.values()),
            "engines": len(self._engines),
            "memo": {name: memo.stats() for name, memo in zip(names, self._memos, strict=False)},
        }


def worker_main(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of a worker process: serve requests on ``conn`` until told to stop or it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the server, which stops us
    try:
        host = WorkerHost(config)
    except Exception as exc:
        conn.send(("error", f"worker failed to start: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", host.stats()))
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "shutdown":
            return
        try:
            reply: tuple[str, Any] = ("ok", host.ops[op](**args))
        except Exception as exc:  # the engine's own errors go back to the caller, the worker lives on
            log.exception("worker op %s failed", op)
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


_PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``environments`` package, put on the child's ``PYTHONPATH``."""


def launch_worker(config: WorkerConfig) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start a worker interpreter and return it with the parent's end of its duplex connection.

    The child gets the other end of a socket pair as an inherited file descriptor; nothing depends
    on how the caller was started. A child whose parent dies sees end-of-file and exits.
    """
    parent_end, child_end = socket.socketpair()
    with child_end:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(_PROJECT_ROOT), env.get("PYTHONPATH"))))
        command = [sys.executable, "-m", __name__, str(child_end.fileno()), json.dumps(asdict(config))]
        process = subprocess.Popen(command, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=env)
    return process, Connection(parent_end.detach())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m environments.alfworld.worker FD CONFIG_JSON``: serve the inherited connection."""
    fd, config = argv if argv is not None else sys.argv[1:]
    worker_main(Connection(int(fd)), WorkerConfig(**json.loads(config)))


if __name__ == "__main__":
    main()
