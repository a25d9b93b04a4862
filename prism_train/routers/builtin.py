"""The built-in routing strategies: the baselines a fair comparison with PRISM needs, and PRISM.

Each is registered under ``harness.routers`` by name (see ``BUILTIN_ROUTERS``).
"""

from __future__ import annotations

from collections import Counter

from environments.core.trajectory import Trajectory
from prism_train.concentration import STATISTICS
from prism_train.routers import (
    Router,
    RouterError,
    RoutingDecision,
    RoutingRequest,
    Task,
    median_split,
)
from prism_train.scores import ProbeScore


class SFTOnly(Router):
    name = "sft-only"
    description = "every expert trajectory is imitated; no RL"

    def route(self, request: RoutingRequest) -> RoutingDecision:
        return RoutingDecision(self.name, sft=list(request.trajectories),
                               sft_reasons={t.id: "sft-only: every trajectory is imitated"
                                            for t in request.trajectories})


class RLOnly(Router):
    name = "rl-only"
    description = "no imitation; RL on every task of the pool (the compute baseline)"

    def route(self, request: RoutingRequest) -> RoutingDecision:
        return RoutingDecision(self.name, rl=list(request.tasks),
                               rl_reasons={t.key: "rl-only: every task is explored" for t in request.tasks})


class SFTThenRL(Router):
    name = "sft-then-rl"
    description = "imitate every trajectory, then RL on every task"

    def route(self, request: RoutingRequest) -> RoutingDecision:
        return RoutingDecision(
            self.name, sft=list(request.trajectories), rl=list(request.tasks),
            sft_reasons={t.id: "sft-then-rl: every trajectory is imitated first" for t in request.trajectories},
            rl_reasons={t.key: "sft-then-rl: every task is then explored" for t in request.tasks},
        )


def _first_of_each_task(request: RoutingRequest, trajectories) -> dict[str, Trajectory]:
    """Task key -> the first of ``trajectories`` on that task."""
    first: dict[str, Trajectory] = {}
    for trajectory in trajectories:
        first.setdefault(request.task_for(trajectory).key, trajectory)
    return first


def _rl_tasks(request: RoutingRequest, trajectories, reason) -> tuple[list[Task], dict[str, str]]:
    """The distinct tasks of ``trajectories`` (pool order) with the reason of their first trajectory."""
    reasons = {key: reason(t) for key, t in _first_of_each_task(request, trajectories).items()}
    tasks = [task for task in request.tasks if task.key in reasons]
    return tasks, reasons


class RandomHalf(Router):
    name = "random"
    description = "a seeded random half of the trajectories to SFT, the other half's tasks to RL"

    def route(self, request: RoutingRequest) -> RoutingDecision:
        sft, rl, _ = median_split(request.trajectories, lambda t: 0.0, lambda t: t.id, request.seed)
        tasks, rl_reasons = _rl_tasks(request, rl, lambda t: f"random: other half (seed {request.seed})")
        return RoutingDecision(self.name, sft=sft, rl=tasks,
                               sft_reasons={t.id: f"random: drawn into the SFT half (seed {request.seed})"
                                            for t in sft},
                               rl_reasons=rl_reasons)


class ScoreRouter(Router):
    """Median split on one probe statistic; the lower half goes to SFT (the upper with ``to_sft='high'``)."""

    requires = frozenset({"scores"})
    statistic: str = "gini"
    to_sft: str = "low"

    def value(self, score: ProbeScore) -> float:
        if self.statistic == "loss":
            return score.loss
        try:
            return score.statistics[self.statistic]
        except KeyError:
            raise RouterError(f"score of {score.id!r} has no {self.statistic!r} statistic "
                              f"(has {sorted(score.statistics)})") from None

    def route(self, request: RoutingRequest) -> RoutingDecision:
        value = {t.id: self.value(request.scores[t.id]) for t in request.trajectories}
        low, high, median = median_split(request.trajectories, lambda t: value[t.id], lambda t: t.id, request.seed)
        sft, rl = (low, high) if self.to_sft == "low" else (high, low)
        sft_side, rl_side = ("<=", ">") if self.to_sft == "low" else (">", "<=")
        stat = self.statistic

        def reason(side: str):
            return lambda t: f"{self.name}: {stat} {side} median {median:.6g}"

        tasks, rl_reasons = _rl_tasks(request, rl, reason(rl_side))
        values = {t.id: value[t.id] for t in sft}
        values.update((key, value[t.id]) for key, t in _first_of_each_task(request, rl).items())
        return RoutingDecision(self.name, sft=sft, rl=tasks, sft_reasons={t.id: reason(sft_side)(t) for t in sft},
                               rl_reasons=rl_reasons, values=values)


class PrismGini(ScoreRouter):
    name = "prism-gini"
    description = "PRISM: gradient-concentration Gini <= median to SFT, > median to RL"
    statistic = "gini"


class PrismCV(ScoreRouter):
    name = "prism-cv"
    description = "PRISM variant: coefficient of variation of gradient norms, median split"
    statistic = "cv"


class PrismKurtosis(ScoreRouter):
    name = "prism-kurtosis"
    description = "PRISM variant: kurtosis of gradient norms, median split"
    statistic = "kurtosis"


class PrismReverse(ScoreRouter):
    name = "prism-reverse"
    description = "ablation: concentration > median to SFT, <= median to RL (option statistic=gini|cv|kurtosis)"
    to_sft = "high"

    def __init__(self, statistic: str = "gini") -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; choose from {', '.join(STATISTICS)}")
        self.statistic = statistic


class GradNorm(ScoreRouter):
    name = "grad-norm"
    description = "total gradient norm over the projections <= median to SFT, > median to RL"
    statistic = "grad_norm"


class LowestLoss(ScoreRouter):
    name = "loss"
    description = "lowest-loss (perplexity) half to SFT, highest-loss half to RL"
    statistic = "loss"


class Difficulty(Router):
    """Rollout accuracy of the current policy (HPT / SuperRL-like): k episodes per task.

    Tasks it fails on all ``k`` episodes are out of reach of exploration, so their demonstrations go
    to SFT; tasks it solves at least once go to RL. A never-solved task with no demonstration cannot
    be imitated and is excluded.
    """

    name = "difficulty"
    description = "tasks the current policy fails on all k rollouts to SFT, those it sometimes solves to RL (option k)"
    requires = frozenset({"rollout"})

    def __init__(self, k: int = 4) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k

    def route(self, request: RoutingRequest) -> RoutingDecision:
        assert request.rollout is not None  # checked by prism_train.routers.route
        episodes = request.rollout(request.tasks, self.k, request.seed)
        attempts: Counter[str] = Counter()
        successes: Counter[str] = Counter()
        for episode in episodes:
            key = Task.of(episode).key
            attempts[key] += 1
            successes[key] += bool(episode.success)
        short = [task.key for task in request.tasks if attempts[task.key] != self.k]
        if short:
            raise RouterError(f"rollout callback returned the wrong number of episodes for {len(short)} tasks "
                              f"(expected {self.k} each), e.g. {short[:3]}")
        demonstrated = {request.task_for(t).key for t in request.trajectories}
        rl = [task for task in request.tasks if successes[task.key] > 0]
        rl_reasons = {task.key: f"difficulty: solved {successes[task.key]}/{self.k}" for task in rl}
        failed = {task.key for task in request.tasks if successes[task.key] == 0}
        sft = [t for t in request.trajectories if request.task_for(t).key in failed]
        sft_reasons = {t.id: f"difficulty: task solved 0/{self.k}" for t in sft}
        excluded = {key: f"difficulty: solved 0/{self.k} and no demonstration to imitate"
                    for key in sorted(failed - demonstrated)}
        return RoutingDecision(self.name, sft=sft, rl=rl, sft_reasons=sft_reasons, rl_reasons=rl_reasons,
                               excluded=excluded)
