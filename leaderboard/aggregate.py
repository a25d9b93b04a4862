"""Rows of the leaderboard: one per (run, environment, strategy), aggregated over seeds.

Compute follows the accounting of the PRISM comparison: a strategy's cost on one seed is its cell's
own ledger plus the entries of the shared ledger (same environment and seed) whose phase the strategy
lists in ``RoutingSummary.shared_phases`` – so a PRISM row pays for the probe, a random split does
not. Rows report compute as the mean per seed, and its ratio to rl-only of the same run.

Each trained row is also compared with the untrained policy of the same run episode by episode (same
split and task, and same seed where the untrained policy was evaluated per seed; ``harness eval``
evaluates it once when it cannot depend on the seed, and that one evaluation pairs with every seed):
the mean paired difference of the primary metric with a t-interval over those episodes. That interval
holds evaluation noise only, for the one trained model per seed, which is what
a single-seed run can say; variation between training runs needs several seeds.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from foundation.records import PHASES, LedgerEntry, RoutingSummary, RunManifest
from foundation.scoring import Metric, Scoring
from leaderboard.load import CellData, LoadedRun, NotCounted
from leaderboard.metrics import breakdown_metrics, env_scoring
from leaderboard.stats import Estimate, estimate

log = logging.getLogger(__name__)

RL_REFERENCE = "rl-only"
BASELINE = "untrained"
PRISM_PREFIX = "prism-"
# What each PRISM variant is compared with, seed by seed: a random split, all-imitation, all-exploration,
# and imitation followed by exploration on everything.
PRISM_REFERENCES = ("random", "sft-only", "rl-only", "sft-then-rl")


@dataclass(frozen=True)
class RunInfo:
    """Where rows came from: shown beside every row in compare mode."""

    index: int
    run_id: str
    label: str
    model: str
    machine: str
    root: Path
    manifest: RunManifest


@dataclass(frozen=True)
class Compute:
    """Compute of one piece of work, or the mean per seed of a strategy."""

    flops: float = 0.0
    device_s: float = 0.0
    wall_s: float = 0.0
    tokens: float = 0.0
    env_steps: float = 0.0
    flops_by_phase: dict[str, float] = field(default_factory=dict)
    devices: tuple[str, ...] = ()

    @property
    def device_hours(self) -> float:
        return self.device_s / 3600

    @property
    def wall_hours(self) -> float:
        return self.wall_s / 3600

    @classmethod
    def of(cls, entries: Iterable[LedgerEntry]) -> Compute:
        entries = list(entries)
        by_phase: dict[str, float] = defaultdict(float)
        for entry in entries:
            by_phase[entry.phase] += entry.flops
        return cls(
            flops=sum(e.flops for e in entries), device_s=sum(e.device_s for e in entries),
            wall_s=sum(e.wall_s for e in entries), tokens=sum(e.tokens for e in entries),
            env_steps=sum(e.env_steps for e in entries),
            flops_by_phase={p: by_phase[p] for p in PHASES if p in by_phase},
            devices=tuple(sorted({e.device for e in entries})),
        )

    @classmethod
    def mean(cls, items: Sequence[Compute]) -> Compute:
        phases = [p for p in PHASES if any(p in c.flops_by_phase for c in items)]
        return cls(
            flops=statistics.fmean(c.flops for c in items), device_s=statistics.fmean(c.device_s for c in items),
            wall_s=statistics.fmean(c.wall_s for c in items), tokens=statistics.fmean(c.tokens for c in items),
            env_steps=statistics.fmean(c.env_steps for c in items),
            flops_by_phase={p: statistics.fmean(c.flops_by_phase.get(p, 0.0) for c in items) for p in phases},
            devices=tuple(sorted({d for c in items for d in c.devices})),
        )


@dataclass(frozen=True)
class Row:
    """One strategy of one run on one environment, over its finished seeds."""

    run: RunInfo
    env: str
    strategy: str
    seeds: tuple[int, ...]
    episodes: tuple[int, ...]
    split_episodes: dict[str, tuple[int, ...]]
    values: dict[str, Estimate | None]
    compute: Compute
    seed_compute: tuple[Compute, ...]
    compute_ratio: float | None
    routing: tuple[RoutingSummary | None, ...]
    vs_baseline: Estimate | None = None  # paired per-episode difference to the untrained policy (see module doc)
    vs_rl_only: Estimate | None = None  # paired across-seed difference of the primary metric to rl-only
    rl: RLSignal | None = None  # what GRPO did in this row's cells


@dataclass(frozen=True)
class RLSignal:
    """GRPO over a row's cells: how many groups carried a learning signal, and how far updates moved the policy."""

    iterations: int
    groups: int
    groups_with_signal: int
    mean_policy_kl: float  # mean over iterations of KL(before ‖ after the update)

    @property
    def signal_fraction(self) -> float:
        return self.groups_with_signal / self.groups if self.groups else 0.0

    @classmethod
    def of(cls, entries: Iterable[LedgerEntry]) -> RLSignal | None:
        updates = [e.meta for e in entries if e.phase == "rl_update" and "groups" in e.meta]
        if not updates:
            return None
        return cls(len(updates), sum(int(m["groups"]) for m in updates),
                   sum(int(m.get("groups_with_signal", 0)) for m in updates),
                   statistics.fmean(float(m.get("policy_kl", 0.0)) for m in updates))


@dataclass(frozen=True)
class Comparison:
    """A PRISM variant against a reference strategy of the same run: the per-seed differences of the
    primary metric over the seeds both finished, with a t-interval across those seeds."""

    run: RunInfo
    strategy: str
    reference: str
    difference: Estimate


@dataclass(frozen=True)
class EnvBoard:
    """Everything measured on one environment: its columns and its rows, best primary metric first."""

    env: str
    scoring: Scoring
    columns: tuple[Metric, ...]
    rows: tuple[Row, ...]
    comparisons: tuple[Comparison, ...] = ()


@dataclass(frozen=True)
class Leaderboard:
    runs: tuple[RunInfo, ...]
    boards: tuple[EnvBoard, ...]
    not_counted: tuple[tuple[RunInfo, NotCounted], ...]
    warnings: tuple[str, ...]
    compare: bool


def machine_label(environment: dict[str, Any]) -> str:
    """A short description of the machine a run was made on, from its manifest."""
    details = [str(environment[k]) for k in ("machine",) if environment.get(k)]
    if environment.get("cpu_count"):
        details.append(f"{environment['cpu_count']} CPUs")
    host = str(environment.get("hostname") or "unknown host")
    return f"{host} ({', '.join(details)})" if details else host


def model_name(manifest: RunManifest) -> str:
    return str((manifest.config.get("model") or {}).get("source") or "unknown model")


def run_infos(runs: Sequence[LoadedRun]) -> list[RunInfo]:
    """Label each run by its model, adding the run_id where two runs share a model."""
    models = [model_name(run.manifest) for run in runs]
    return [
        RunInfo(index, run.run_id, model if models.count(model) == 1 else f"{model} · {run.run_id}", model,
                machine_label(run.manifest.environment), run.root, run.manifest)
        for index, (run, model) in enumerate(zip(runs, models, strict=True))
    ]


def _charged(run: LoadedRun, cell: CellData, warnings: list[str]) -> Compute:
    """The cell's ledger plus the shared work its strategy uses (see module docstring)."""
    shared_phases = cell.routing.shared_phases if cell.routing else []
    shared = run.shared_ledgers.get((cell.status.env, cell.status.seed), ())
    charged = [entry for entry in shared if entry.phase in shared_phases]
    for phase in shared_phases:
        if not any(entry.phase == phase for entry in shared):
            warnings.append(f"{run.run_id}: cell {cell.status.cell_id} uses shared phase {phase!r}, but the shared "
                            f"ledger of {cell.status.env} seed {cell.status.seed} has no {phase!r} entries; "
                            "its compute lacks that work")
    return Compute.of([*cell.ledger, *charged])


def _paired_difference(metric: Metric, cells: Sequence[CellData], baseline: Sequence[CellData]) -> Estimate | None:
    """``metric`` per episode minus the baseline's on the same (seed, split, task); a baseline evaluated on one
    seed only (the untrained policy from a shared base, the same on every seed) pairs with every seed's
    episodes on the same (split, task). None without pairs."""
    def per_episode(cell_list: Sequence[CellData]) -> dict[tuple[int, str, str], float]:
        values = {(e.seed, e.split, e.task_id): metric.value([e]) for c in cell_list for e in c.episodes}
        return {key: value for key, value in values.items() if value is not None}

    mine, theirs = per_episode(cells), per_episode(baseline)
    once = {c.status.seed for c in baseline}
    if len(once) == 1:
        (seed,) = once
        theirs = {(own, split, task): theirs[seed, split, task]
                  for own, split, task in mine if (seed, split, task) in theirs}
    return estimate(mine[key] - theirs[key] for key in sorted(mine.keys() & theirs.keys()))


def seed_difference(metric: Metric, cells: Sequence[CellData], reference: Sequence[CellData]) -> Estimate | None:
    """``metric`` of each seed's cell minus the reference strategy's on the same seed, as an estimate across
    the seeds both have (a seed is one whole training run: the unit of replication)."""
    def per_seed(cell_list: Sequence[CellData]) -> dict[int, float]:
        values = {c.status.seed: metric.value(c.episodes) for c in cell_list}
        return {seed: value for seed, value in values.items() if value is not None}

    mine, theirs = per_seed(cells), per_seed(reference)
    return estimate(mine[seed] - theirs[seed] for seed in sorted(mine.keys() & theirs.keys()))


def _comparisons(info: RunInfo, groups: dict[str, list[CellData]], primary: Metric) -> list[Comparison]:
    found = []
    for strategy in sorted(s for s in groups if s.startswith(PRISM_PREFIX)):
        for reference in PRISM_REFERENCES:
            difference = seed_difference(primary, groups[strategy], groups.get(reference, ()))
            if difference is not None:
                found.append(Comparison(info, strategy, reference, difference))
    return found


def _row(info: RunInfo, run: LoadedRun, cells: list[CellData], columns: Sequence[Metric],
         warnings: list[str], baseline: Sequence[CellData] = (), rl_only: Sequence[CellData] = ()) -> Row:
    cells = sorted(cells, key=lambda c: c.status.seed)
    splits = sorted({e.split for c in cells for e in c.episodes})
    seed_compute = tuple(_charged(run, cell, warnings) for cell in cells)
    values = {}
    for metric in columns:
        per_seed = [metric.value(cell.episodes) for cell in cells]
        values[metric.key] = estimate(v for v in per_seed if v is not None)
    first = cells[0].status
    paired = first.strategy != BASELINE and bool(baseline)
    return Row(
        run=info, env=first.env, strategy=first.strategy, seeds=tuple(c.status.seed for c in cells),
        episodes=tuple(len(c.episodes) for c in cells),
        split_episodes={s: tuple(sum(e.split == s for e in c.episodes) for c in cells) for s in splits},
        values=values, compute=Compute.mean(seed_compute), seed_compute=seed_compute, compute_ratio=None,
        routing=tuple(c.routing for c in cells),
        vs_baseline=_paired_difference(columns[0], cells, baseline) if paired else None,  # [0]: primary
        vs_rl_only=seed_difference(columns[0], cells, rl_only) if first.strategy != RL_REFERENCE else None,
        rl=RLSignal.of(entry for cell in cells for entry in cell.ledger),
    )


def _with_ratios(rows: list[Row]) -> list[Row]:
    """Set each row's FLOPs ratio to rl-only of the same run (None where that run has no rl-only)."""
    reference = {row.run.run_id: row.compute.flops for row in rows if row.strategy == RL_REFERENCE}
    result = []
    for row in rows:
        base = reference.get(row.run.run_id)
        ratio = row.compute.flops / base if base else None
        result.append(replace(row, compute_ratio=ratio))
    return result


def _sort_key(primary: str) -> Callable[[Row], tuple]:
    """Best primary metric first; rows without it last; ties by strategy, then run."""
    def key(row: Row) -> tuple:
        value = row.values.get(primary)
        return (value is None, -(value.mean if value else 0.0), row.strategy, row.run.label)
    return key


def _episode_count_warnings(board: EnvBoard) -> list[str]:
    """Rows of one environment evaluated on different numbers of episodes per split are not comparable."""
    warnings = []
    splits = sorted({s for row in board.rows for s in row.split_episodes})
    for split in splits:
        counts = {(row.run.label, row.strategy): row.split_episodes.get(split) or (0,) * len(row.seeds)
                  for row in board.rows}
        distinct = {n for per_seed in counts.values() for n in per_seed}
        if len(distinct) > 1:
            detail = ", ".join(f"{label}/{strategy}: {'/'.join(map(str, n))}"
                               for (label, strategy), n in sorted(counts.items()))
            warnings.append(f"{board.env}, split {split}: cells were evaluated on different numbers of episodes "
                            f"({detail}); their scores are not directly comparable")
    return warnings


def build(runs: Sequence[LoadedRun], compare: bool, known_scoring: Mapping[str, Scoring] | None = None) -> Leaderboard:
    """Aggregate loaded runs into per-environment boards; only ``done`` cells count. ``known_scoring`` scores
    the environments of runs that recorded no scoring (written before ``run.json`` held it)."""
    infos = run_infos(runs)
    warnings: list[str] = []
    groups: dict[str, dict[tuple[int, str], list[CellData]]] = defaultdict(lambda: defaultdict(list))
    for index, run in enumerate(runs):
        for cell in run.cells:
            groups[cell.status.env][(index, cell.status.strategy)].append(cell)
    configured = [env.get("name") for run in runs for env in run.manifest.config.get("envs", [])]
    boards = []
    for env in [name for name in dict.fromkeys([*configured, *sorted(groups)]) if name in groups]:
        scoring = env_scoring(env, (run.manifest for run in runs), known_scoring or {})
        episodes = [e for cells in groups[env].values() for c in cells for e in c.episodes]
        columns = (*scoring.metrics, *breakdown_metrics(scoring, episodes))
        rows = [_row(infos[index], runs[index], cells, columns, warnings, groups[env].get((index, BASELINE), ()),
                     groups[env].get((index, RL_REFERENCE), ()))
                for (index, _strategy), cells in groups[env].items()]
        comparisons = [c for index, info in enumerate(infos) for c in _comparisons(
            info, {s: cells for (i, s), cells in groups[env].items() if i == index}, scoring.primary)]
        board = EnvBoard(env, scoring, columns, tuple(sorted(_with_ratios(rows), key=_sort_key(scoring.primary.key))),
                         tuple(comparisons))
        warnings += _episode_count_warnings(board)
        boards.append(board)
    not_counted = tuple((info, item) for info, run in zip(infos, runs, strict=True) for item in run.not_counted)
    for message in warnings:
        log.warning(message)
    return Leaderboard(tuple(infos), tuple(boards), not_counted, tuple(warnings), compare)
