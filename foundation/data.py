"""Where the benchmark data lives, and proof that it is the data we expect.

Every environment asks this module for its files instead of guessing paths. Lookup order:
an explicit directory, then ``$HARNESS_DATA_DIR``, then ``../shared/data`` beside the repository.
Each environment declares its files as :class:`DataFile` entries (``EnvSpec.data_files``: path, size,
SHA-256, public source), and every file is checked against its entry, so that a truncated download or a
different catalogue version fails loudly instead of silently changing results. Archives are unpacked
once into a cache directory, atomically and without letting any member escape the target.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR_ENV = "HARNESS_DATA_DIR"
CACHE_DIR_ENV = "HARNESS_CACHE_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DataFile:
    """One expected file: where it sits under the data root, its fingerprint and its public origin."""

    relpath: str
    size: int
    sha256: str
    source: str


class DataError(RuntimeError):
    """Base class: the benchmark data cannot be used as it is."""


class DataMissingError(DataError):
    """A data directory or file is not where it should be."""


class DataCorruptError(DataError):
    """A file exists but is not the file its :class:`DataFile` entry describes, or an archive cannot be read."""


def _missing_help(wanted: Sequence[DataFile]) -> str:
    lines = [
        f"Set ${DATA_DIR_ENV} to a directory holding the benchmark data, or place it at "
        f"{REPO_ROOT.parent / 'shared' / 'data'}. Expected files and their original public sources:"
    ]
    lines += [f"  {f.relpath} ({f.size:,} bytes) <- {f.source}" for f in wanted] or [
        "  those each environment lists in its spec's data_files (docs/environments.md)"]
    return "\n".join(lines)


def data_root(explicit: str | os.PathLike[str] | None = None, wanted: Sequence[DataFile] = ()) -> Path:
    """The directory holding the benchmark data (``webshop/``, ``alfworld/``, ...); if none exists, raises with
    instructions that list the ``wanted`` files and their sources."""
    if explicit is not None:
        label, path = "the configured data directory", Path(explicit)
    elif os.environ.get(DATA_DIR_ENV):
        label, path = f"${DATA_DIR_ENV}", Path(os.environ[DATA_DIR_ENV])
    else:
        label, path = "the shared data beside the repository", REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise DataMissingError(f"No benchmark data directory at {path} ({label}).\n{_missing_help(wanted)}")
    return path.resolve()


def cache_dir() -> Path:
    """Writable cache for unpacked archives and derived artefacts (``$HARNESS_CACHE_DIR`` wins)."""
    base = os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "prism-harness"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


_verified: dict[tuple[str, int, int], bool] = {}
_verify_lock = threading.Lock()


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_file(entry: DataFile, root: str | os.PathLike[str] | None = None, verify: bool = True) -> Path:
    """Path to ``entry``'s file under the data root, after checking its size and checksum."""
    path = data_root(root, (entry,)) / entry.relpath
    if not path.is_file():
        raise DataMissingError(f"Missing data file {path}.\n{_missing_help((entry,))}")
    if verify:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with _verify_lock:
            if key not in _verified:
                if stat.st_size != entry.size:
                    raise DataCorruptError(
                        f"{path} has {stat.st_size:,} bytes, expected {entry.size:,} "
                        f"(truncated or a different version). Fetch it again from {entry.source}"
                    )
                actual = sha256_of(path)
                if actual != entry.sha256:
                    raise DataCorruptError(
                        f"{path} has SHA-256 {actual}, expected {entry.sha256}. Fetch it again from {entry.source}"
                    )
                _verified[key] = True
    return path


def _check_members(archive: tarfile.TarFile, target: Path) -> None:
    """Refuse archives whose members would land outside ``target`` or are not plain files/dirs."""
    root = target.resolve()
    for member in archive.getmembers():
        dest = (root / member.name).resolve()
        if member.name.startswith("/") or not dest.is_relative_to(root):
            raise DataCorruptError(f"Archive member {member.name!r} would escape the unpack directory")
        if not (member.isfile() or member.isdir()):
            raise DataCorruptError(f"Archive member {member.name!r} is a link or special file; refusing it")


def unpacked_archive(entry: DataFile, root: str | os.PathLike[str] | None = None) -> Path:
    """Directory where the archive ``entry`` is unpacked; unpacks it on first use.

    The unpack goes to a temporary sibling directory that is renamed into place only when
    complete, so an interrupted unpack never leaves a half-filled cache that looks finished.
    """
    archive_path = data_file(entry, root)
    target = cache_dir() / "unpacked" / f"{Path(entry.relpath).name.split('.')[0]}-{entry.sha256[:12]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        log.info("Unpacking %s into %s (once)", archive_path, target)
        try:
            with tarfile.open(archive_path) as archive:
                _check_members(archive, tmp)
                # `filter` exists from Python 3.11.4 (Debian bookworm has 3.11.2); _check_members already
                # refused links, special files and escapes, so the plain extract is safe there too.
                archive.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise DataCorruptError(f"Cannot read archive {archive_path}: {exc}") from exc
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # a concurrent unpacker won the race only if target now exists
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
