"""What each environment reports: the :class:`~foundation.scoring.Scoring` its spec declares.

The harness records every environment's scoring in ``run.json`` (``RunManifest.scoring``), so the
leaderboard reads it from the run and imports no environment. WebShop: score = 100 × mean reward (ranks),
success = share of episodes with reward 1; ALFWorld: task success, overall, per split (seen / unseen) and
per task type. Runs written before the scoring was recorded use the scoring the caller knows (the
installed specs'), and an environment with neither gets the generic pair: success flag, then mean reward.
Per-split and per-task-type columns are derived from the episodes themselves, not from names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from foundation.records import RunManifest
from foundation.scoring import Episodes, Metric, Scoring, generic_scoring


def env_scoring(env: str, manifests: Iterable[RunManifest], known: Mapping[str, Scoring]) -> Scoring:
    """The scoring the first run that recorded one for ``env`` holds; else ``known[env]``; else the generic one."""
    for manifest in manifests:
        if env in manifest.scoring:
            return Scoring.from_json(manifest.scoring[env])
    return known.get(env) or generic_scoring(env)


def breakdown_metrics(scoring: Scoring, episodes: Episodes) -> list[Metric]:
    """Columns of the breakdown metric per split (when there are several) and per task type (when set)."""
    base = scoring.metric(scoring.breakdown)
    columns = []
    splits = sorted({e.split for e in episodes})
    if len(splits) > 1:
        columns += [replace(base, key=f"split:{split}", label=f"{scoring.split_label(split)} {base.label}",
                            help=f"{base.help}, split {split}", split=split) for split in splits]
    task_types = sorted({e.task_type for e in episodes if e.task_type})
    columns += [replace(base, key=f"type:{task_type}", label=task_type, help=f"{base.help}, task type {task_type}",
                        task_type=task_type) for task_type in task_types]
    return columns
