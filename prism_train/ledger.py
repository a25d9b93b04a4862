"""Compute accounting: every phase of every strategy writes what it spent to one ledger.

A ledger is an append-only JSON Lines file, one record per finished piece of work::

    {"version": 1, "phase": "sft", "tokens": 51200, "flops": 3.4e13, "wall_s": 12.5, "device_s": 11.9,
     "env_steps": 0, "device": "cpu", "note": "", "strategy": "prism-gini", "run": "prism-gini-s0",
     "time": 1764212345.1, "meta": {"steps": 10}}

``tokens`` are tokens pushed through the model (context included), ``flops`` come from
:mod:`prism_train.flops`, ``wall_s`` is the phase's elapsed time, ``device_s`` the time spent in
model compute times the number of devices used, ``env_steps`` environment actions taken. The record
itself, :class:`foundation.records.LedgerEntry`, belongs to the run-record schema, so run directories
and these files read the same. Records are added, never rewritten, so a resumed run simply keeps
appending. This module imports no torch: ledgers can be read with :func:`read_ledger` and
:func:`compare_strategies` without it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.jsonl import append_record, read_records
from foundation.records import LEDGER_VERSION, METRICS, PHASES, LedgerEntry

log = logging.getLogger(__name__)

BASELINE_STRATEGY = "rl-only"


class PhaseMeter:
    """What a phase adds up while it runs; :meth:`Ledger.phase` writes it out when the phase ends."""

    def __init__(self, sync: Callable[[], None] | None = None, devices: int = 1) -> None:
        self.tokens = 0
        self.flops = 0.0
        self.env_steps = 0
        self.device_s = 0.0
        self.meta: dict[str, Any] = {}
        self._sync = sync or (lambda: None)
        self._devices = devices

    def add(self, tokens: int = 0, flops: float = 0.0, env_steps: int = 0, device_s: float = 0.0) -> None:
        """Count work; ``device_s`` is for device time measured elsewhere (e.g. by a rollout engine)."""
        self.tokens += int(tokens)
        self.flops += float(flops)
        self.env_steps += int(env_steps)
        self.device_s += float(device_s) * self._devices

    @contextmanager
    def on_device(self) -> Iterator[None]:
        """Time a block of model compute (synchronising the accelerator at both ends)."""
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.device_s += (time.perf_counter() - start) * self._devices


class Ledger:
    """Appends :class:`LedgerEntry` records for one run of one strategy.

    ``path=None`` keeps the entries in memory only (``entries`` always holds what this object wrote).
    """

    def __init__(self, path: str | os.PathLike[str] | None, strategy: str, run: str = "") -> None:
        if not strategy:
            raise ValueError("a ledger needs a strategy name")
        self.path = Path(path) if path is not None else None
        self.strategy = strategy
        self.run = run or strategy
        self.entries: list[LedgerEntry] = []

    def record(self, phase: str, *, tokens: int = 0, flops: float = 0.0, wall_s: float = 0.0, device_s: float = 0.0,
               env_steps: int = 0, device: str = "cpu", note: str = "", **meta: Any) -> LedgerEntry:
        entry = LedgerEntry(phase=phase, tokens=int(tokens), flops=float(flops), wall_s=float(wall_s),
                            device_s=float(device_s), env_steps=int(env_steps), device=device, note=note,
                            strategy=self.strategy, run=self.run, time=time.time(), meta=meta)
        if self.path is not None:
            append_record(self.path, entry.to_json())
        self.entries.append(entry)
        log.debug("ledger %s/%s: %s", self.strategy, phase, entry)
        return entry

    @contextmanager
    def phase(self, phase: str, sync: Callable[[], None] | None = None, devices: int = 1,
              device: str = "cpu") -> Iterator[PhaseMeter]:
        """Measure a block: wall time, plus whatever the block adds to the meter; written at exit.

        The record is written even when the block raises (the compute was spent), marked
        ``meta.interrupted``.
        """
        if phase not in PHASES:
            raise ValueError(f"unknown ledger phase {phase!r}; phases are {', '.join(PHASES)}")
        meter = PhaseMeter(sync, devices)
        start = time.perf_counter()
        interrupted = True
        try:
            yield meter
            interrupted = False
        finally:
            meta = dict(meter.meta)
            if interrupted:
                meta["interrupted"] = True
            self.record(phase, tokens=meter.tokens, flops=meter.flops, wall_s=time.perf_counter() - start,
                        device_s=meter.device_s, env_steps=meter.env_steps, device=device, **meta)


def read_ledger(path: str | os.PathLike[str]) -> list[LedgerEntry]:
    """All entries of a ledger file (a torn last line, from a crash, is skipped)."""
    return [LedgerEntry.from_json(record) for record in read_records(path, LEDGER_VERSION, kind="ledger record")]


@dataclass(frozen=True)
class StrategyCost:
    """A strategy's spending: sums over all its runs, per phase, and per run relative to the baseline.

    ``ratio[m]`` is (this strategy's mean per-run ``m``) / (the baseline's); below 1 is cheaper.
    The paper's "N× lower than full RL" is ``1 / ratio['flops']``. ``None`` where the baseline
    spent nothing on that metric.
    """

    strategy: str
    runs: int
    totals: dict[str, float]
    per_run: dict[str, float]
    phases: dict[str, dict[str, float]]
    ratio: dict[str, float | None]


LedgerSource = str | os.PathLike[str] | LedgerEntry


def _entries(source: LedgerSource) -> list[tuple[str, LedgerEntry]]:
    """(run key, entry) pairs; entries without a run name belong to the file they came from."""
    if isinstance(source, LedgerEntry):
        return [(source.run, source)]
    return [(entry.run or str(source), entry) for entry in read_ledger(source)]


def compare_strategies(
    ledgers: Mapping[str, Iterable[LedgerSource]] | Iterable[LedgerSource], baseline: str = BASELINE_STRATEGY
) -> dict[str, StrategyCost]:
    """Total the ledgers of several strategies and relate each to ``baseline`` (rl-only by default).

    ``ledgers`` is either ``{strategy: [ledger paths or entries]}`` (entries count for that key, as
    for run-directory cell ledgers that do not name their strategy) or a flat collection whose
    entries name their own ``strategy``. Runs are told apart by the ``run`` field (or the file), so
    strategies with different numbers of seeds are compared per run.
    """
    pairs: list[tuple[str, str, LedgerEntry]] = []
    if isinstance(ledgers, Mapping):
        for strategy, sources in ledgers.items():
            pairs += [(strategy, run, entry) for source in sources for run, entry in _entries(source)]
    else:
        for source in ledgers:
            for run, entry in _entries(source):
                if not entry.strategy:
                    raise ValueError(f"a ledger entry of {source!r} names no strategy; pass {{strategy: ledgers}}")
                pairs.append((entry.strategy, run, entry))
    totals: dict[str, dict[str, float]] = {}
    phases: dict[str, dict[str, dict[str, float]]] = {}
    runs: dict[str, set[str]] = {}
    for strategy, run, entry in pairs:
        strategy_totals = totals.setdefault(strategy, dict.fromkeys(METRICS, 0.0))
        phase_totals = phases.setdefault(strategy, {}).setdefault(entry.phase, dict.fromkeys(METRICS, 0.0))
        for metric in METRICS:
            strategy_totals[metric] += getattr(entry, metric)
            phase_totals[metric] += getattr(entry, metric)
        runs.setdefault(strategy, set()).add(run)
    if baseline not in totals:
        raise ValueError(f"no ledger entries for the baseline strategy {baseline!r}; "
                         f"strategies found: {', '.join(sorted(totals)) or 'none'}")
    per_run = {s: {m: v / len(runs[s]) for m, v in t.items()} for s, t in totals.items()}
    base = per_run[baseline]
    return {
        strategy: StrategyCost(
            strategy=strategy,
            runs=len(runs[strategy]),
            totals=totals[strategy],
            per_run=per_run[strategy],
            phases=phases[strategy],
            ratio={m: (per_run[strategy][m] / base[m] if base[m] else None) for m in METRICS},
        )
        for strategy in sorted(totals)
    }


def cost_table(costs: Mapping[str, StrategyCost]) -> list[dict[str, Any]]:
    """Rows for printing: strategy, runs, per-run totals and FLOP / device-time ratios."""
    return [
        {"strategy": c.strategy, "runs": c.runs, **c.per_run,
         "flops_ratio": c.ratio["flops"], "device_s_ratio": c.ratio["device_s"]}
        for c in costs.values()
    ]
