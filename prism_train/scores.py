"""Probe scores on disk: one JSON line per trajectory, keyed by the trajectory id.

::

    {"version": 1, "id": "webshop/expert/goal-00012", "env": "webshop", "task_id": "goal-00012",
     "loss": 2.31, "action_tokens": 57, "normalization": "none",
     "matrices": ["0.q_proj", "0.k_proj", ...], "numels": [4096, ...], "norms": [0.013, ...],
     "statistics": {"gini": 0.41, "cv": 0.83, "kurtosis": 1.9, "grad_norm": 0.35}, "model": "..."}

``norms`` are the raw Frobenius norms (so any normalisation can be recomputed); ``statistics`` are
computed on the norms after ``normalization``. Torch-free: routers read these.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from foundation.jsonl import read_records, write_records
from prism_train.concentration import STATISTICS, normalize

SCORES_VERSION = 1


@dataclass(frozen=True)
class ProbeScore:
    """The probe's verdict on one trajectory."""

    id: str
    env: str
    task_id: str
    loss: float
    action_tokens: int
    matrices: list[str]
    numels: list[int]
    norms: list[float]
    normalization: str = "none"
    statistics: dict[str, float] = field(default_factory=dict)
    model: str = ""
    version: int = SCORES_VERSION

    @classmethod
    def build(cls, *, id: str, env: str, task_id: str, loss: float, action_tokens: int, matrices: Sequence[str],
              numels: Sequence[int], norms: Sequence[float], normalization: str = "none",
              model: str = "") -> ProbeScore:
        """A score with its statistics computed from ``norms`` under ``normalization``."""
        values = normalize(norms, numels, normalization)
        stats = {name: fn(values) for name, fn in STATISTICS.items()}
        return cls(id=id, env=env, task_id=task_id, loss=float(loss), action_tokens=int(action_tokens),
                   matrices=list(matrices), numels=[int(n) for n in numels], norms=[float(n) for n in norms],
                   normalization=normalization, statistics=stats, model=model)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_scores(path: str | os.PathLike[str], scores: Iterable[ProbeScore]) -> None:
    """Write all scores at once (atomic replace); ids must be unique."""
    scores = list(scores)
    seen: set[str] = set()
    for score in scores:
        if score.id in seen:
            raise ValueError(f"trajectory id {score.id!r} scored twice")
        seen.add(score.id)
    write_records(path, (s.to_json() for s in scores))


def read_scores(path: str | os.PathLike[str]) -> dict[str, ProbeScore]:
    """Scores by trajectory id."""
    scores: dict[str, ProbeScore] = {}
    for record in read_records(path, SCORES_VERSION, kind="probe score"):
        score = ProbeScore(**record)
        if score.id in scores:
            raise ValueError(f"{path}: trajectory id {score.id!r} appears twice")
        scores[score.id] = score
    return scores
