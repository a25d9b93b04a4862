"""What each environment reports: a registry from environment name to its metrics.

WebShop is scored by its reward (score = 100 × mean reward; success = share of episodes with reward
exactly 1), ALFWorld by task success, overall, per split (seen / unseen) and per task type. An
environment that is not registered (a plugin) gets the generic pair: success flag and mean reward.
Per-split and per-task-type columns are derived from the episodes themselves, not from names.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from foundation.records import EpisodeResult

Episodes = Sequence[EpisodeResult]


def _score(episodes: Episodes) -> float:
    return 100 * statistics.fmean(e.reward for e in episodes)


def _full_reward_rate(episodes: Episodes) -> float:
    return 100 * statistics.fmean(e.reward == 1.0 for e in episodes)


def _success_rate(episodes: Episodes) -> float:
    return 100 * statistics.fmean(bool(e.success) for e in episodes)


@dataclass(frozen=True)
class Metric:
    """One number per seed, computed from that seed's episodes; higher is better."""

    key: str
    label: str
    value: Callable[[Episodes], float | None]
    help: str = ""


@dataclass(frozen=True)
class EnvMetrics:
    """How one environment is scored. ``metrics[0]`` ranks the table; ``plotted`` get Pareto plots."""

    title: str
    metrics: tuple[Metric, ...]
    breakdown: str
    plotted: tuple[str, ...]
    split_labels: dict[str, str] = field(default_factory=dict)

    @property
    def primary(self) -> Metric:
        return self.metrics[0]

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)

    def split_label(self, split: str) -> str:
        return self.split_labels.get(split, split)


SCORE = Metric("score", "score", _score, "100 × mean reward")
FULL_REWARD = Metric("success", "success %", _full_reward_rate, "share of episodes with reward exactly 1")
SUCCESS = Metric("success", "success %", _success_rate, "share of episodes the environment marked successful")

ENV_METRICS: dict[str, EnvMetrics] = {
    "webshop": EnvMetrics("WebShop", (SCORE, FULL_REWARD), breakdown="score", plotted=("score", "success")),
    "alfworld": EnvMetrics("ALFWorld", (SUCCESS,), breakdown="success", plotted=("success",),
                           split_labels={"valid_seen": "seen", "valid_unseen": "unseen"}),
}


def env_metrics(env: str) -> EnvMetrics:
    """The registered scoring of ``env``, or the generic one (success, then score) for plugin environments."""
    return ENV_METRICS.get(env) or EnvMetrics(env, (SUCCESS, SCORE), breakdown="success", plotted=("success",))


def _filtered(metric: Metric, attribute: str, wanted: str, episodes: Episodes) -> float | None:
    subset = [e for e in episodes if getattr(e, attribute) == wanted]
    return metric.value(subset) if subset else None


def breakdown_metrics(scoring: EnvMetrics, episodes: Episodes) -> list[Metric]:
    """Columns of the breakdown metric per split (when there are several) and per task type (when set)."""
    base = scoring.metric(scoring.breakdown)
    columns = []
    splits = sorted({e.split for e in episodes})
    if len(splits) > 1:
        columns += [Metric(f"split:{split}", f"{scoring.split_label(split)} {base.label}",
                           partial(_filtered, base, "split", split), f"{base.help}, split {split}")
                    for split in splits]
    task_types = sorted({e.task_type for e in episodes if e.task_type})
    columns += [Metric(f"type:{task_type}", task_type, partial(_filtered, base, "task_type", task_type),
                       f"{base.help}, task type {task_type}") for task_type in task_types]
    return columns
