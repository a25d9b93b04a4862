"""Trajectory records: the JSON Lines format shared by experts, rollouts and trainers.

One line per episode::

    {"version": 1, "id": "webshop/expert/goal-00012", "env": "webshop", "task_id": "goal-12",
     "split": "train", "task": "i need ...", "source": "expert", "seed": 0,
     "steps": [{"observation": "...", "action": "search[...]", "reward": 0.0, "terminated": false,
                "info": {...}}, ...],
     "final_observation": "...", "reward": 1.0, "success": true, "truncated": false,
     "metadata": {...}}

``steps[i].observation`` is what the agent saw before taking ``steps[i].action``; ``reward`` is what
that action earned. Lines are read and appended through :mod:`foundation.jsonl` (one synced ``write``
each), so a crash leaves at most one partial last line, which readers skip with a warning (resumption
relies on that).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundation.jsonl import append_record, read_records

TRAJECTORY_FORMAT_VERSION = 1


@dataclass
class Step:
    observation: str
    action: str
    reward: float
    terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trajectory:
    id: str
    env: str
    task_id: str
    task: str
    source: str
    steps: list[Step] = field(default_factory=list)
    final_observation: str = ""
    reward: float = 0.0
    success: bool = False
    truncated: bool = False
    split: str = ""
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = TRAJECTORY_FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Trajectory:
        version = payload.get("version")
        if version != TRAJECTORY_FORMAT_VERSION:
            raise ValueError(
                f"trajectory {payload.get('id')!r} has format version {version}; "
                f"this code reads version {TRAJECTORY_FORMAT_VERSION}"
            )
        fields = dict(payload)
        fields["steps"] = [Step(**step) for step in payload.get("steps", [])]
        return cls(**fields)

    @property
    def actions(self) -> list[str]:
        return [step.action for step in self.steps]


def read_trajectories(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Yield the trajectories in a JSONL file, skipping (and logging) a torn final line."""
    for payload in read_records(path, TRAJECTORY_FORMAT_VERSION, kind="trajectory"):
        yield Trajectory.from_json(payload)


class TrajectoryWriter:
    """Appends trajectories to a JSONL file; knows which ids are already there, for resuming."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = set()
        if self.path.exists():  # a torn last line from a crash is skipped here and cut by the next write
            self.done_ids = {trajectory.id for trajectory in read_trajectories(self.path)}

    def write(self, trajectory: Trajectory) -> None:
        if trajectory.id in self.done_ids:
            raise ValueError(f"trajectory {trajectory.id!r} is already in {self.path}")
        append_record(self.path, trajectory.to_json())
        self.done_ids.add(trajectory.id)

    def write_all(self, trajectories: Iterable[Trajectory]) -> None:
        for trajectory in trajectories:
            self.write(trajectory)

    def close(self) -> None:
        """Nothing to release: every record is its own synced append (kept so a writer works in ``with``)."""

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
