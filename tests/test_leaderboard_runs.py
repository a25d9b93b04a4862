"""The leaderboard's run loader on run directories written with the real writers (``tests.helpers.runs``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foundation.records import EpisodeResult, RunDir, append_jsonl
from harness.runs import open_run
from leaderboard.load import RunLoadError, load_run, load_runs
from tests.helpers.runs import build_main_run, build_second_run, make_config


@pytest.fixture
def main_run(tmp_path: Path) -> Path:
    return build_main_run(tmp_path / "main-run")


@pytest.fixture
def second_run(tmp_path: Path) -> Path:
    return build_second_run(tmp_path / "second-run")


def test_only_done_cells_are_read_and_the_rest_keep_their_reason(main_run: Path) -> None:
    run = load_run(main_run)
    assert run.manifest.config["model"]["source"] == "tiny"
    assert len(run.cells) == 3 * 4 + 2 + 3 * 3 + 2
    reasons = {item.status.cell_id: item.reason for item in run.not_counted}
    assert reasons == {"webshop__random__seed2": "failed in phase rl_update: RuntimeError: out of memory",
                       "alfworld__prism-gini__seed2": "running in phase rollout"}
    assert {key: len(entries) for key, entries in run.shared_ledgers.items()} == {
        (env, seed): 2 for env in ("webshop", "alfworld") for seed in (0, 1, 2)}


def test_a_done_cell_without_episodes_is_listed_not_counted(main_run: Path) -> None:
    run = RunDir(main_run)
    (run.cell_dir("webshop__sft-only__seed1") / "episodes.jsonl").unlink()
    loaded = load_run(main_run)
    assert [(i.status.cell_id, i.reason) for i in loaded.not_counted if i.status.state == "done"] == [
        ("webshop__sft-only__seed1", "done, but no evaluation episodes were recorded")]


def test_missing_path_and_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RunLoadError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(RunLoadError, match="is not a directory"):
        load_run(tmp_path / "file.txt")


def test_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    with pytest.raises(RunLoadError, match=r"is not a run directory: it has no run\.json"):
        load_run(tmp_path / "results")


def test_an_empty_run_is_a_clear_error(tmp_path: Path) -> None:
    config = make_config("empty", "tiny", [0], [{"name": "webshop", "train_split": "train", "train_tasks": 8,
                                                  "eval_splits": ["test"]}])
    open_run(config, tmp_path / "empty")
    with pytest.raises(RunLoadError, match="is an empty run: it has no cells yet"):
        load_run(tmp_path / "empty")


def test_a_newer_record_version_is_refused_naming_the_file(main_run: Path) -> None:
    path = RunDir(main_run).cell_dir("webshop__rl-only__seed0") / "episodes.jsonl"
    lines = path.read_text().splitlines()
    newer = json.loads(lines[0]) | {"version": 2}
    path.write_text("\n".join([json.dumps(newer), *lines[1:]]) + "\n")
    with pytest.raises(RunLoadError, match=r"episodes\.jsonl:1: record format version 2; this code reads version 1"):
        load_run(main_run)


def test_a_newer_manifest_is_refused(main_run: Path) -> None:
    manifest = json.loads((main_run / "run.json").read_text()) | {"version": 7}
    (main_run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunLoadError, match=r"run\.json: RunManifest record has version 7"):
        load_run(main_run)


def test_corrupt_json_is_a_clear_error(main_run: Path) -> None:
    (main_run / "run.json").write_text("{not json")
    with pytest.raises(RunLoadError, match=r"run\.json: Expecting property name"):
        load_run(main_run)
    build_main_run(main_run.parent / "again")
    path = RunDir(main_run.parent / "again").cell_dir("webshop__rl-only__seed0") / "ledger.jsonl"
    path.write_text('{"phase": "sft"\n{"phase": "sft"}\n')
    with pytest.raises(RunLoadError, match=r"ledger\.jsonl: .*ledger\.jsonl:1: not a JSON record"):
        load_run(main_run.parent / "again")


def test_episodes_of_another_cell_are_refused(main_run: Path) -> None:
    stray = EpisodeResult("webshop", "sft-only", 0, "test", "goal-x", 1.0, True, 3)
    append_jsonl(RunDir(main_run).cell_dir("webshop__rl-only__seed0") / "episodes.jsonl", [stray.to_json()])
    with pytest.raises(RunLoadError, match=r"episodes of \[\('webshop', 'sft-only', 0\)\] in the cell of"):
        load_run(main_run)


def test_the_same_run_twice_is_refused(main_run: Path) -> None:
    with pytest.raises(RunLoadError, match="are the same run"):
        load_runs([main_run, main_run])
    with pytest.raises(RunLoadError, match="no run directory given"):
        load_runs([])
