"""Trajectory records: the JSON Lines format shared by experts, rollouts and trainers.

One line per episode::

    {"version": 1, "id": "webshop/expert/goal-00012", "env": "webshop", "task_id": "goal-12",
     "split": "train", "task": "i need ...", "source": "expert", "seed": 0,
     "steps": [{"observation": "...", "action": "search[...]", "reward": 0.0, "terminated": false,
                "info": {...}}, ...],
     "final_observation": "...", "reward": 1.0, "success": true, "truncated": false,
     "metadata": {...}}

``steps[i].observation`` is what the agent saw before taking ``steps[i].action``; ``reward`` is what
that action earned. Lines are appended with one ``write`` each and flushed, so a crash leaves at most
one partial last line, which readers skip with a warning (resumption relies on that).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

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
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON trajectory record: {exc}") from exc
        yield Trajectory.from_json(payload)


class TrajectoryWriter:
    """Appends trajectories to a JSONL file; knows which ids are already there, for resuming."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = set()
        if self.path.exists():
            self._drop_torn_tail()
            self.done_ids = {trajectory.id for trajectory in read_trajectories(self.path)}
        self._fh = open(self.path, "a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        """Cut a partial last line left by a crash so the next record starts on a fresh line."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)

    def write(self, trajectory: Trajectory) -> None:
        if trajectory.id in self.done_ids:
            raise ValueError(f"trajectory {trajectory.id!r} is already in {self.path}")
        self._fh.write(json.dumps(trajectory.to_json(), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done_ids.add(trajectory.id)

    def write_all(self, trajectories: Iterable[Trajectory]) -> None:
        for trajectory in trajectories:
            self.write(trajectory)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
