"""How an environment is scored, as data: its metrics, which one ranks, which are plotted.

An environment declares its :class:`Scoring` in its spec (``EnvSpec.scoring``); the harness writes it
into each run's ``run.json``, and the leaderboard, which imports no environment, reads it from there.
So a metric names one of the aggregates of :data:`AGGREGATES` instead of holding code, and a plugin
environment is reported as its author declared it, even where its package is not installed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from foundation.records import EpisodeResult

Episodes = Sequence[EpisodeResult]


def _mean_reward(episodes: Episodes) -> float:
    return 100 * statistics.fmean(e.reward for e in episodes)


def _success_rate(episodes: Episodes) -> float:
    return 100 * statistics.fmean(bool(e.success) for e in episodes)


AGGREGATES: dict[str, Callable[[Episodes], float]] = {
    "mean_reward": _mean_reward,  # 100 × mean episode reward
    "success_rate": _success_rate,  # % of episodes the environment's success rule marked successful
}


@dataclass(frozen=True)
class Metric:
    """One number per seed from that seed's episodes (higher is better): ``aggregate`` over the episodes,
    or only those of ``split`` / ``task_type`` where set (the leaderboard's breakdown columns)."""

    key: str
    label: str
    aggregate: str
    help: str = ""
    split: str = ""
    task_type: str = ""

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"metric {self.key!r}: unknown aggregate {self.aggregate!r}; "
                             f"known: {', '.join(sorted(AGGREGATES))}")

    def value(self, episodes: Episodes) -> float | None:
        """The metric over ``episodes`` (None when none of them is in its split / task type)."""
        chosen = [e for e in episodes if (not self.split or e.split == self.split)
                  and (not self.task_type or e.task_type == self.task_type)]
        return AGGREGATES[self.aggregate](chosen) if chosen else None


@dataclass(frozen=True)
class Scoring:
    """How one environment is scored. ``metrics[0]`` ranks the table; ``breakdown`` is the metric shown per
    split and task type; ``plotted`` get Pareto plots; ``split_labels`` are short names for splits."""

    title: str
    metrics: tuple[Metric, ...]
    breakdown: str
    plotted: tuple[str, ...]
    split_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = [m.key for m in self.metrics]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError(f"scoring {self.title!r}: metrics must be at least one, with distinct keys; got {keys}")
        unknown = [key for key in (self.breakdown, *self.plotted) if key not in keys]
        if unknown:
            raise ValueError(f"scoring {self.title!r}: {unknown} name no metric; metrics are {keys}")

    @property
    def primary(self) -> Metric:
        return self.metrics[0]

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)

    def split_label(self, split: str) -> str:
        return self.split_labels.get(split, split)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "metrics": [asdict(m) for m in self.metrics], "breakdown": self.breakdown,
                "plotted": list(self.plotted), "split_labels": dict(self.split_labels)}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Scoring:
        return cls(title=payload["title"], metrics=tuple(Metric(**m) for m in payload["metrics"]),
                   breakdown=payload["breakdown"], plotted=tuple(payload["plotted"]),
                   split_labels=dict(payload.get("split_labels") or {}))


SCORE = Metric("score", "score", "mean_reward", "100 × mean reward")
SUCCESS = Metric("success", "success %", "success_rate", "share of episodes the environment marked successful")


def generic_scoring(env: str) -> Scoring:
    """The scoring of an environment that declares none: success flag, then mean reward."""
    return Scoring(env, (SUCCESS, SCORE), breakdown="success", plotted=("success",))
