"""Routing strategies: which expert trajectories are imitated (SFT) and which tasks are explored (RL).

A router is a plugin published under the ``harness.routers`` entry-point group; the built-ins are
registered the same way, and all are looked up in :data:`REGISTRY` (the one plugin rule of
:mod:`foundation.registry`). It receives a :class:`RoutingRequest` (the trajectories, their probe
scores, the task pool, a seed and, for strategies that must watch the current policy, a rollout
callback) and returns a :class:`RoutingDecision` with a reason for every item. Training then runs
SFT on ``decision.sft`` followed by RL on ``decision.rl`` (either may be empty).

Writing one (see ``docs/prism_train.md`` for a complete package)::

    from prism_train.routers import Router, RoutingDecision

    class LongestFirst(Router):
        name = "longest-first"
        description = "long demonstrations to SFT, the rest to RL"

        def route(self, request):
            ...
            return RoutingDecision(self.name, sft=[...], rl=[...], sft_reasons={...}, rl_reasons={...})

and in the plugin's ``pyproject.toml``::

    [project.entry-points."harness.routers"]
    longest-first = "my_package:LongestFirst"

Torch-free: routing works on scores that were computed earlier.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from environments.core.trajectory import Trajectory
from foundation.jsonl import read_records, write_records
from foundation.registry import Registry, RegistryLookupError
from prism_train.scores import ProbeScore

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness.routers"
DECISION_VERSION = 1

# The built-ins, exactly as pyproject.toml declares them under [project.entry-points."harness.routers"].
BUILTIN_ROUTERS: dict[str, str] = {
    "sft-only": "prism_train.routers.builtin:SFTOnly",
    "rl-only": "prism_train.routers.builtin:RLOnly",
    "sft-then-rl": "prism_train.routers.builtin:SFTThenRL",
    "random": "prism_train.routers.builtin:RandomHalf",
    "prism-gini": "prism_train.routers.builtin:PrismGini",
    "prism-cv": "prism_train.routers.builtin:PrismCV",
    "prism-kurtosis": "prism_train.routers.builtin:PrismKurtosis",
    "prism-reverse": "prism_train.routers.builtin:PrismReverse",
    "grad-norm": "prism_train.routers.builtin:GradNorm",
    "loss": "prism_train.routers.builtin:LowestLoss",
    "difficulty": "prism_train.routers.builtin:Difficulty",
}


@dataclass(frozen=True)
class Task:
    """One task of the pool RL draws from: enough to reset its environment."""

    env: str
    task_id: str
    task: str = ""
    split: str = ""

    @property
    def key(self) -> str:
        return f"{self.env}/{self.task_id}"

    @classmethod
    def of(cls, trajectory: Trajectory) -> Task:
        return cls(env=trajectory.env, task_id=trajectory.task_id, task=trajectory.task, split=trajectory.split)


def tasks_of(trajectories: Sequence[Trajectory]) -> list[Task]:
    """The distinct tasks of ``trajectories``, in first-seen order."""
    tasks: dict[str, Task] = {}
    for trajectory in trajectories:
        task = Task.of(trajectory)
        tasks.setdefault(task.key, task)
    return list(tasks.values())


RolloutFn = Callable[[Sequence[Task], int, int], Sequence[Trajectory]]
"""``rollout(tasks, k, seed)``: ``k`` episodes of the current policy on each task (the harness binds
it to the rollout engine); routers that need the policy's behaviour, such as ``difficulty``, call it."""


@dataclass(frozen=True)
class RoutingRequest:
    """What every router is given. ``tasks`` is the RL task pool; each trajectory's task must be in it."""

    trajectories: Sequence[Trajectory]
    scores: Mapping[str, ProbeScore]
    tasks: Sequence[Task]
    seed: int
    rollout: RolloutFn | None = None

    def __post_init__(self) -> None:
        ids = [t.id for t in self.trajectories]
        if len(set(ids)) != len(ids):
            raise ValueError("trajectory ids must be unique for routing")
        keys = {task.key for task in self.tasks}
        if len(keys) != len(self.tasks):
            raise ValueError("task keys (env/task_id) must be unique in the task pool")
        stray = sorted({Task.of(t).key for t in self.trajectories} - keys)
        if stray:
            raise ValueError(f"{len(stray)} trajectories belong to tasks outside the task pool, e.g. {stray[:3]}")
        object.__setattr__(self, "_by_key", {task.key: task for task in self.tasks})

    def task_for(self, trajectory: Trajectory) -> Task:
        """The pool's task that ``trajectory`` demonstrates."""
        return self._by_key[Task.of(trajectory).key]


@dataclass
class RoutingDecision:
    """The split, with a human-readable reason per item.

    ``sft_reasons`` is keyed by trajectory id, ``rl_reasons`` by task key; ``excluded`` names items
    (trajectory ids or task keys) a router deliberately left out of both sets, with why. A reason
    names the rule that sent the item (the run's summary counts items per reason); ``values``
    optionally holds the number each item was routed by (its Gini, say), keyed like the reasons.
    """

    strategy: str
    sft: list[Trajectory] = field(default_factory=list)
    rl: list[Task] = field(default_factory=list)
    sft_reasons: dict[str, str] = field(default_factory=dict)
    rl_reasons: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def to_records(self) -> list[dict[str, Any]]:
        """One record per item: ``set`` (sft / rl / excluded), ``id`` (trajectory id or task key),
        the task (env, task_id, split), the reason, and the value it was routed by where there is one."""
        base = {"version": DECISION_VERSION, "strategy": self.strategy}

        def task(t: Task) -> dict[str, str]:
            return {"env": t.env, "task_id": t.task_id, "split": t.split}

        def value(key: str) -> dict[str, float]:
            return {"value": self.values[key]} if key in self.values else {}

        return (
            [{**base, "set": "sft", "id": t.id, **task(Task.of(t)), "reason": self.sft_reasons[t.id], **value(t.id)}
             for t in self.sft]
            + [{**base, "set": "rl", "id": t.key, **task(t), "reason": self.rl_reasons[t.key], **value(t.key)}
               for t in self.rl]
            + [{**base, "set": "excluded", "id": k, "reason": r} for k, r in self.excluded.items()]
        )


class RouterError(RuntimeError):
    """A router could not route (missing scores, no rollout callback) or returned an invalid decision."""


class Router(ABC):
    """Base class of routing strategies; options come in as keyword arguments of the constructor."""

    #: registry name (the entry-point name should match it)
    name: str = ""
    #: one line for ``harness routers list``
    description: str = ""
    #: what the request must carry: any of "scores", "rollout"
    requires: frozenset[str] = frozenset()

    @abstractmethod
    def route(self, request: RoutingRequest) -> RoutingDecision:
        """Split ``request`` into an SFT set and an RL set."""


T = TypeVar("T")


def seeded_order_key(seed: int, ident: str) -> str:
    """A tie-breaker that is fixed for a (seed, id) pair but unrelated to how ids are spelled."""
    return hashlib.sha256(f"{seed}:{ident}".encode()).hexdigest()


def median_split(items: Sequence[T], value: Callable[[T], float], ident: Callable[[T], str],
                 seed: int) -> tuple[list[T], list[T], float]:
    """(lower half, upper half, median) of ``items`` by ``value``.

    Items are ranked by value, ties broken by :func:`seeded_order_key`; the first ``ceil(n/2)`` form
    the lower half. With distinct values this is exactly "≤ median" vs "> median"; with ties at the
    median it still gives halves, deterministically for a given seed.
    """
    if not items:
        return [], [], math.nan
    keyed = []
    for item in items:
        v = float(value(item))
        if not math.isfinite(v):
            raise RouterError(f"{ident(item)!r} has a non-finite routing value {v}")
        keyed.append((v, seeded_order_key(seed, ident(item)), item))
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    values = sorted(v for v, _, _ in keyed)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    cut = (n + 1) // 2
    return [item for _, _, item in keyed[:cut]], [item for _, _, item in keyed[cut:]], median


class UnknownRouterError(RegistryLookupError):
    """No router of that name is installed, or the plugin claiming the name is broken."""


REGISTRY: Registry[type[Router]] = Registry(
    "router", ENTRY_POINT_GROUP, BUILTIN_ROUTERS,
    accepts=lambda value: isinstance(value, type) and issubclass(value, Router),
    expected=f"a subclass of {Router.__module__}.Router", name_of=lambda router: router.name,
    error=UnknownRouterError)


@dataclass(frozen=True)
class RouterInfo:
    name: str
    description: str
    requires: frozenset[str]
    source: str  # "module:attr" the entry point names
    origin: str  # "built-in", or the plugin's "distribution version"
    error: str  # why the entry is broken (or refused, for a name clash); empty when it works


def describe_routers() -> list[RouterInfo]:
    """Every router entry, for listings: name, description and requirements, where it comes from, and the
    error of a broken plugin (or of a refused clashing name), so that a broken install is visible."""
    return [RouterInfo(e.name, getattr(e.value, "description", ""), frozenset(getattr(e.value, "requires", ())),
                       e.source, e.origin, e.error) for e in REGISTRY.entries()]


def get_router(name: str, **options: Any) -> Router:
    """An instance of the router registered as ``name``, built with ``options``."""
    factory = REGISTRY.get(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise RouterError(f"router {name!r} does not take these options {sorted(options)}: {exc}") from exc


def route(name: str, request: RoutingRequest, **options: Any) -> RoutingDecision:
    """Run router ``name`` on ``request`` and check what it returns before anyone trains on it."""
    router = get_router(name, **options)
    if "scores" in router.requires:
        missing = [t.id for t in request.trajectories if t.id not in request.scores]
        if missing:
            raise RouterError(f"router {name!r} needs probe scores; {len(missing)} trajectories have none, "
                              f"e.g. {missing[:3]} (run `harness probe` first)")
    if "rollout" in router.requires and request.rollout is None:
        raise RouterError(f"router {name!r} needs a rollout callback to watch the current policy")
    decision = router.route(request)
    validate_decision(decision, request)
    log.info("router %s: %d trajectories to SFT, %d tasks to RL, %d excluded", name, len(decision.sft),
             len(decision.rl), len(decision.excluded))
    return decision


def validate_decision(decision: RoutingDecision, request: RoutingRequest) -> None:
    """A decision may only route items it was given, each once, each with a reason."""
    known_ids = {t.id for t in request.trajectories}
    known_tasks = {t.key for t in request.tasks}
    sft_ids = [t.id for t in decision.sft]
    rl_keys = [t.key for t in decision.rl]
    problems = []
    if len(set(sft_ids)) != len(sft_ids):
        problems.append("a trajectory is in the SFT set twice")
    if len(set(rl_keys)) != len(rl_keys):
        problems.append("a task is in the RL set twice")
    if set(sft_ids) - known_ids:
        problems.append(f"unknown trajectories in the SFT set: {sorted(set(sft_ids) - known_ids)[:3]}")
    if set(rl_keys) - known_tasks:
        problems.append(f"unknown tasks in the RL set: {sorted(set(rl_keys) - known_tasks)[:3]}")
    if set(sft_ids) - set(decision.sft_reasons) or set(rl_keys) - set(decision.rl_reasons):
        problems.append("every routed item needs a reason")
    if problems:
        raise RouterError(f"router {decision.strategy!r} returned an invalid decision: " + "; ".join(problems))


def write_decision(path: str | os.PathLike[str], decision: RoutingDecision) -> None:
    """Save a decision as JSON Lines (one record per routed or excluded item), atomically."""
    write_records(path, decision.to_records())


@dataclass(frozen=True)
class SavedDecision:
    """A decision read back from disk: trajectory ids and tasks (the trajectories live in their own file)."""

    strategy: str
    sft_ids: list[str]
    rl_tasks: list[Task]
    reasons: dict[str, str]


def read_decision(path: str | os.PathLike[str]) -> SavedDecision:
    records = list(read_records(path, DECISION_VERSION, kind="routing record"))
    strategies = {r["strategy"] for r in records}
    if len(strategies) > 1:
        raise ValueError(f"{path} mixes decisions of several strategies: {sorted(strategies)}")
    return SavedDecision(
        strategy=strategies.pop() if strategies else "",
        sft_ids=[r["id"] for r in records if r["set"] == "sft"],
        rl_tasks=[Task(r["env"], r["task_id"], split=r["split"]) for r in records if r["set"] == "rl"],
        reasons={f"{r['set']}:{r['id']}": r["reason"] for r in records},
    )
