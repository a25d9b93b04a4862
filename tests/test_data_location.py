"""The data-location module: lookup order, verification, and safe, atomic, once-only unpacking."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from environments.core.registry import env_specs
from environments.webshop.data_files import ATTRIBUTES_FILE, HUMAN_GOALS_FILE
from foundation import data
from foundation.data import DataCorruptError, DataFile, DataMissingError


def _fake_root(tmp_path: Path, relpath: str, payload: bytes) -> tuple[Path, DataFile]:
    """A data root holding ``payload`` at ``relpath``, and the entry that describes it by its real hash."""
    root = tmp_path / "data"
    (root / relpath).parent.mkdir(parents=True, exist_ok=True)
    (root / relpath).write_bytes(payload)
    import hashlib

    return root, DataFile(relpath, len(payload), hashlib.sha256(payload).hexdigest(), "https://example.invalid/src")


def test_shared_data_is_found_and_verified():
    path = data.data_file(ATTRIBUTES_FILE)
    assert path.is_file() and path.stat().st_size == ATTRIBUTES_FILE.size


def test_env_var_takes_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.data_root() == tmp_path.resolve()
    with pytest.raises(DataMissingError) as err:
        data.data_file(HUMAN_GOALS_FILE)
    message = str(err.value)
    assert "webshop/human_goals.json" in message and "github" in message  # says what and where from


def test_missing_directory_explains_how_to_get_data(tmp_path):
    wanted = [f for spec in env_specs().values() for f in spec.data_files]  # what the environments declare
    assert {"webshop/items_shuffle_1000.json", "alfworld/json_2.1.1.tar.xz"} <= {f.relpath for f in wanted}
    with pytest.raises(DataMissingError) as err:
        data.data_root(tmp_path / "nowhere", wanted)
    text = str(err.value)
    assert "HARNESS_DATA_DIR" in text
    assert all(f.relpath in text and f.source in text for f in wanted)


def test_truncated_file_is_reported(tmp_path):
    root, entry = _fake_root(tmp_path, "webshop/x.json", b"0123456789")
    (root / "webshop/x.json").write_bytes(b"01234")
    with pytest.raises(DataCorruptError, match="truncated"):
        data.data_file(entry, root)


def test_checksum_mismatch_is_reported(tmp_path):
    root, entry = _fake_root(tmp_path, "webshop/x.json", b"0123456789")
    (root / "webshop/x.json").write_bytes(b"9876543210")
    with pytest.raises(DataCorruptError, match="SHA-256"):
        data.data_file(entry, root)


def _tar_xz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_archive_unpacks_once_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    archive = _tar_xz({"top/one.txt": b"1", "top/sub/two.txt": b"2"})
    root, entry = _fake_root(tmp_path, "alfworld/a.tar.xz", archive)
    target = data.unpacked_archive(entry, root)
    assert (target / "top/sub/two.txt").read_bytes() == b"2"
    (target / "top/one.txt").write_bytes(b"marker")
    assert data.unpacked_archive(entry, root) == target
    assert (target / "top/one.txt").read_bytes() == b"marker"  # not unpacked a second time
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".unpack-")]


def test_archive_path_escape_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    root, entry = _fake_root(tmp_path, "alfworld/evil.tar.xz", _tar_xz({"../../escaped.txt": b"x"}))
    with pytest.raises(DataCorruptError, match="escape"):
        data.unpacked_archive(entry, root)
    assert not (tmp_path / "escaped.txt").exists()
    assert not any((tmp_path / "cache" / "unpacked").iterdir())  # nothing half-unpacked left behind


def test_corrupt_archive_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    good = _tar_xz({"top/one.txt": b"1" * 1000})
    root, entry = _fake_root(tmp_path, "alfworld/bad.tar.xz", good[: len(good) // 2])
    with pytest.raises(DataCorruptError, match="Cannot read archive"):
        data.unpacked_archive(entry, root)
