"""Comparing rollouts of two runs, and a trajectory file that kills a host mid-run (Ray and container tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from environments.core.trajectory import Trajectory, TrajectoryWriter


def content(trajectory: Trajectory | dict[str, Any]) -> Any:
    """A trajectory without its timings (the only fields allowed to differ between two runs)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("time_s")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    payload = trajectory.to_json() if isinstance(trajectory, Trajectory) else trajectory
    return strip(json.loads(json.dumps(payload)))


def by_id(trajectories: list[Trajectory]) -> dict[str, Any]:
    return {t.id: content(t) for t in trajectories}


class KillingWriter(TrajectoryWriter):
    """A real trajectory file that calls ``kill`` (a Ray node, a container) after its ``after``-th episode."""

    def __init__(self, path: Path, kill: Any, after: int) -> None:
        super().__init__(path)
        self._kill, self._after, self.written_before_kill = kill, after, None

    def write(self, trajectory: Trajectory) -> None:
        super().write(trajectory)
        if len(self.done_ids) == self._after:
            self._kill()
            self.written_before_kill = len(self.done_ids)
