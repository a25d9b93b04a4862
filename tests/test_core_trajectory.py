"""The shared trajectory format: round trip, versioning, torn-line tolerance and resumable writing."""

from __future__ import annotations

import json

import pytest

from environments.core.trajectory import Step, Trajectory, TrajectoryWriter, read_trajectories


def _trajectory(i: int) -> Trajectory:
    return Trajectory(
        id=f"toy/expert/{i}", env="toy", task_id=str(i), task="do it", source="expert",
        steps=[Step("obs", "act", 1.0, True, {"k": i})], final_observation="done", reward=1.0, success=True,
    )


def test_round_trip(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        writer.write_all(_trajectory(i) for i in range(3))
    loaded = list(read_trajectories(path))
    assert [t.to_json() for t in loaded] == [_trajectory(i).to_json() for i in range(3)]
    assert json.loads(path.read_text().splitlines()[0])["version"] == 1


def test_resume_after_a_torn_write(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        writer.write(_trajectory(0))
    with open(path, "a") as fh:
        fh.write('{"version": 1, "id": "toy/expert/1", "env"')  # killed mid-line
    assert [t.id for t in read_trajectories(path)] == ["toy/expert/0"]
    with TrajectoryWriter(path) as writer:
        assert writer.done_ids == {"toy/expert/0"}
        writer.write(_trajectory(1))
    assert [t.id for t in read_trajectories(path)] == ["toy/expert/0", "toy/expert/1"]


def test_duplicates_and_unknown_versions_are_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        writer.write(_trajectory(0))
        with pytest.raises(ValueError, match="already"):
            writer.write(_trajectory(0))
    record = _trajectory(5).to_json() | {"version": 99}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="version 99"):
        list(read_trajectories(path))
