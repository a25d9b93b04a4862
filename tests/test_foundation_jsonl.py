"""The one JSON Lines reader/writer: torn lines from a crash, concurrent appenders, versions."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from foundation.jsonl import append_record, read_records, write_records


def test_a_torn_last_line_is_skipped_on_read_and_cut_by_the_next_append(tmp_path, caplog):
    path = tmp_path / "ledger.jsonl"
    append_record(path, {"version": 1, "n": 0})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"version": 1, "n": "killed mid-li')  # what a crash during a write leaves
    with caplog.at_level(logging.WARNING, logger="foundation.jsonl"):
        assert [r["n"] for r in read_records(path, 1)] == [0]
        append_record(path, {"version": 1, "n": 1})
    assert "cutting an incomplete last line" in caplog.text
    assert [r["n"] for r in read_records(path, 1)] == [0, 1]  # the resumed run's record is not glued to it
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_a_file_that_is_one_torn_line_is_cut_to_nothing(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"version": 1, "long": "' + b"x" * 100_000)  # longer than one read block, no newline
    append_record(path, {"version": 1, "n": 1})
    assert [r["n"] for r in read_records(path, 1)] == [1]


def test_concurrent_appenders_never_interleave_inside_a_line(tmp_path):
    path = tmp_path / "shared.jsonl"

    def append(worker: int) -> None:
        for i in range(50):
            append_record(path, {"version": 1, "worker": worker, "i": i, "pad": "y" * 5000})

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = list(read_records(path, 1))
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(50)]


def test_versions_and_damage_are_refused_with_the_line_number(tmp_path):
    path = tmp_path / "scores.jsonl"
    write_records(path, [{"version": 1, "a": 1}, {"version": 2, "a": 2}])
    with pytest.raises(ValueError, match=r"scores.jsonl:2: probe score format version 2"):
        list(read_records(path, 1, kind="probe score"))
    path.write_text(json.dumps({"version": 1}) + "\n{broken\n" + json.dumps({"version": 1}) + "\n")
    with pytest.raises(ValueError, match=r":2: not a JSON record"):
        list(read_records(path, 1))
    with pytest.raises(ValueError, match="needs a 'version'"):
        append_record(path, {"a": 1})
