"""Where the benchmark data lives, and proof that it is the data we expect.

Every environment asks this module for its files instead of guessing paths. Lookup order:
an explicit directory, then ``$HARNESS_DATA_DIR``, then ``../shared/data`` beside the repository.
Files are checked against the manifest below (size and SHA-256) so that a truncated download or a
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
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR_ENV = "HARNESS_DATA_DIR"
CACHE_DIR_ENV = "HARNESS_CACHE_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]

_WEBSHOP_GDRIVE = "https://drive.google.com/uc?id="
_WEBSHOP_RAW = "https://raw.githubusercontent.com/princeton-nlp/WebShop/master/baseline_models/data/"


@dataclass(frozen=True)
class DataFile:
    """One expected file: where it sits under the data root, its fingerprint and its public origin."""

    relpath: str
    size: int
    sha256: str
    source: str


MANIFEST: dict[str, DataFile] = {
    f.relpath: f
    for f in (
        DataFile(
            "webshop/items_shuffle_1000.json",
            2748120,
            "35e1e1b62815dcb5fc3713d3b06b2ebebda6b65f670fb1c0bbfa350aa23e5c8d",
            "WebShop setup.sh small catalogue (" + _WEBSHOP_GDRIVE + "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib)",
        ),
        DataFile(
            "webshop/items_ins_v2_1000.json",
            147099,
            "f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f",
            "WebShop setup.sh (" + _WEBSHOP_GDRIVE + "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu), "
            "also WooooDyy/AgentGym",
        ),
        DataFile(
            "webshop/items_human_ins_1000.json",
            5640,
            "8bc0ae02b37351395091c55b29352ba21a26a231d093c151cf1a83847ca66359",
            "derived from WebShop items_human_ins.json (" + _WEBSHOP_GDRIVE + "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O)",
        ),
        DataFile(
            "webshop/human_goals.json",
            999419,
            "b68746ed66cd31fdc5f70eb3f5831a46b38163563b57a66ddcab8fd60ee0cbdc",
            _WEBSHOP_RAW + "human_goals.json",
        ),
        DataFile(
            "webshop/goal_query_map.json",
            244809,
            "1524f438ffbc51c7e308e635d7d9e14fa696b08f5d4300922d454ef0105cea86",
            _WEBSHOP_RAW + "goal_query_map.json",
        ),
        DataFile(
            "webshop/chatshop_goals.json",
            1981119,
            "7d92fe72a3303746fdf88740b194faa3a2e24c3250aa931c4f53e3522505c3c8",
            "https://github.com/sanxing-chen/ChatShop (data/)",
        ),
        DataFile(
            "alfworld/json_2.1.1.tar.xz",
            6488072,
            "99dcc7e52d0bed3eeb8a28a8f5c272d0f2b8aeaee193793c4859f2a6e56455bf",
            "ALFWorld json_2.1.1 game files (run `alfworld-download` with internet access, or "
            "https://github.com/alfworld/alfworld releases), packed as json_2.1.1.tar.xz",
        ),
    )
}


class DataError(RuntimeError):
    """Base class: the benchmark data cannot be used as it is."""


class DataMissingError(DataError):
    """A data directory or file is not where it should be."""


class DataCorruptError(DataError):
    """A file exists but is not the file the manifest describes, or an archive cannot be read."""


def _missing_help(relpath: str | None = None) -> str:
    wanted = [MANIFEST[relpath]] if relpath else list(MANIFEST.values())
    lines = [
        f"Set ${DATA_DIR_ENV} to a directory holding the benchmark data, or place it at "
        f"{REPO_ROOT.parent / 'shared' / 'data'}. Expected files and their original public sources:"
    ]
    lines += [f"  {f.relpath} ({f.size:,} bytes) <- {f.source}" for f in wanted]
    return "\n".join(lines)


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``webshop/`` and ``alfworld/``; raises with instructions if none exists."""
    if explicit is not None:
        label, path = "the configured data directory", Path(explicit)
    elif os.environ.get(DATA_DIR_ENV):
        label, path = f"${DATA_DIR_ENV}", Path(os.environ[DATA_DIR_ENV])
    else:
        label, path = "the shared data beside the repository", REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise DataMissingError(f"No benchmark data directory at {path} ({label}).\n{_missing_help()}")
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


def data_file(relpath: str, root: str | os.PathLike[str] | None = None, verify: bool = True) -> Path:
    """Path to a manifest file under the data root, after checking its size and checksum."""
    if relpath not in MANIFEST:
        raise KeyError(f"{relpath!r} is not a known data file; known: {sorted(MANIFEST)}")
    entry = MANIFEST[relpath]
    path = data_root(root) / relpath
    if not path.is_file():
        raise DataMissingError(f"Missing data file {path}.\n{_missing_help(relpath)}")
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


def unpacked_archive(relpath: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Directory where the archive ``relpath`` is unpacked; unpacks it on first use.

    The unpack goes to a temporary sibling directory that is renamed into place only when
    complete, so an interrupted unpack never leaves a half-filled cache that looks finished.
    """
    archive_path = data_file(relpath, root)
    entry = MANIFEST[relpath]
    target = cache_dir() / "unpacked" / f"{Path(relpath).name.split('.')[0]}-{entry.sha256[:12]}"
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
