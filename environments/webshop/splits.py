"""Fixed train / dev / test splits of the synthetic goals, grouped by target product.

Goals of one product differ only in their option values, so a test goal whose product also appears
in training data is half-seen. The split therefore assigns whole products (ASINs):

1. products eligible for held-out splits are those with at most ``MAX_HELD_OUT_PRODUCT_GOALS`` goals,
   so that no single product dominates a held-out set (on the 1k catalogue one product has 558 goals);
2. their sorted ASINs are shuffled with ``random.Random(SPLIT_SEED)`` and taken in that order into
   ``test`` until it holds at least ``TEST_MIN_GOALS`` goals, then into ``dev`` until it holds at least
   ``DEV_MIN_GOALS``;
3. every other product's goals form ``train``.

On the 1k catalogue: test 508 goals (131 products), dev 261 goals (53 products), train 6,141 goals
(231 products); no test or dev product has a goal in train.

The community convention (the original baseline's ``test = goals 0..499``, which AgentGym and
verl-agent use on this catalogue with ``train = 500..``) is available as ``community_test`` for
comparison with published numbers; 481 of those 500 goals have a product that also appears in
their train range. Human goals (13 on the 1k catalogue) are all test goals.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache

from environments.core.engine import InvalidOptionsError
from environments.webshop.catalogue import Catalogue, Goal, load_catalogue

SPLIT_SEED = 2022
TEST_MIN_GOALS = 500
DEV_MIN_GOALS = 250
MAX_HELD_OUT_PRODUCT_GOALS = 20
COMMUNITY_TEST_SIZE = 500


def product_splits(goals: Sequence[Goal]) -> dict[str, str]:
    """ASIN -> split name for every goal-generating product (see the module docstring)."""
    per_product = Counter(goal.asin for goal in goals)
    eligible = sorted(asin for asin, count in per_product.items() if count <= MAX_HELD_OUT_PRODUCT_GOALS)
    random.Random(SPLIT_SEED).shuffle(eligible)
    assignment = dict.fromkeys(per_product, "train")
    quotas = iter((("test", TEST_MIN_GOALS), ("dev", DEV_MIN_GOALS)))
    split, quota = next(quotas)
    filled = 0
    for asin in eligible:
        if filled >= quota:
            split, quota = next(quotas, (None, 0))
            filled = 0
            if split is None:
                break
        assignment[asin] = split
        filled += per_product[asin]
    return assignment


def _by_product(name: str) -> Callable[[tuple[Goal, ...]], tuple[int, ...]]:
    def select(goals: tuple[Goal, ...]) -> tuple[int, ...]:
        assignment = product_splits(goals)
        return tuple(i for i, goal in enumerate(goals) if assignment[goal.asin] == name)

    return select


SYNTHETIC_SPLITS: dict[str, Callable[[tuple[Goal, ...]], tuple[int, ...]]] = {
    "train": _by_product("train"),
    "dev": _by_product("dev"),
    "test": _by_product("test"),
    "community_test": lambda goals: tuple(range(min(COMMUNITY_TEST_SIZE, len(goals)))),
    "all": lambda goals: tuple(range(len(goals))),
}
HUMAN_SPLITS: dict[str, Callable[[tuple[Goal, ...]], tuple[int, ...]]] = {
    "test": lambda goals: tuple(range(len(goals))),
    "all": lambda goals: tuple(range(len(goals))),
}


def split_names(human: bool = False) -> list[str]:
    return list(HUMAN_SPLITS if human else SYNTHETIC_SPLITS)


@cache
def _indices(catalogue: Catalogue, split: str, human: bool) -> tuple[int, ...]:
    table = HUMAN_SPLITS if human else SYNTHETIC_SPLITS
    if split not in table:
        raise InvalidOptionsError(
            f"unknown split {split!r} for {'human' if human else 'synthetic'} goals; choose one of {sorted(table)}"
        )
    return table[split](catalogue.goals(human))


def goal_indices(split: str, human: bool = False, catalogue: Catalogue | None = None) -> tuple[int, ...]:
    """Indices (into the shuffled goal list) of the goals in ``split``, ascending."""
    return _indices(catalogue or load_catalogue(), split, human)
