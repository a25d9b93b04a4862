"""JSON Lines and JSON files on disk, written so that a crash never leaves a half-valid file.

The one reader/writer for every record the project keeps (trajectories, compute ledgers, run records,
probe scores, routing decisions). Two write modes, standard library only so that every layer, the
leaderboard included, can read what the trainers write:

* :func:`append_record` adds one line with a single ``write`` on an ``O_APPEND`` descriptor, under
  an exclusive ``flock``, and fsyncs it: concurrent appenders never interleave inside a line, and a
  crash leaves at most one torn final line, which :func:`read_records` skips with a warning and the
  next append cuts (so a resumed run never buries it mid-file).
* :func:`write_records` replaces a whole file through a temporary file and ``os.replace``: readers
  see either the old file or the new one.

Every record carries a ``version`` field; readers refuse versions they do not understand.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _line(record: Mapping[str, Any]) -> bytes:
    if "version" not in record:
        raise ValueError("every record needs a 'version' field")
    return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record as one line, atomically with respect to other appenders and crashes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _line(record)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes; makes the tail check and the write one step
        _cut_torn_tail(fd, path)
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, path: Path, block: int = 1 << 16) -> None:
    """Cut a partial last line left by a crash, so that the next record starts on a fresh line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = size
    while keep > 0:
        start = max(0, keep - block)
        newline = os.pread(fd, keep - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        keep = start
    log.warning("%s: cutting an incomplete last line (%d bytes of an interrupted write) before appending",
                path, size - keep)
    os.ftruncate(fd, keep)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write one JSON document so that readers see either the old file or the complete new one, never a mix."""
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_records(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``records``, one per line, atomically (readers see old or new, never half)."""
    atomic_write_text(path, "".join(_line(record).decode("utf-8") for record in records))


def read_records(path: str | os.PathLike[str], version: int, kind: str = "record") -> Iterator[dict[str, Any]]:
    """Yield the records of a JSONL file, checking each one's ``version``; a torn last line is skipped."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not line.endswith("\n") and number == len(lines):
            log.warning("%s: ignoring an incomplete last line (interrupted write)", path)
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON {kind}: {exc}") from exc
        if not isinstance(record, dict) or record.get("version") != version:
            found = record.get("version") if isinstance(record, dict) else None
            raise ValueError(f"{path}:{number}: {kind} format version {found!r}; this code reads version {version}")
        yield record
