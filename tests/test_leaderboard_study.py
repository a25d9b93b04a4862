"""What the study's report adds, checked against numbers worked out by hand from the fixture run
(tests/helpers/runs.py): PRISM against its references paired by seed, score and compute relative to
rl-only, and GRPO's signal read from the cells' ledgers."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from foundation.records import append_jsonl
from leaderboard.aggregate import build
from leaderboard.load import load_run
from leaderboard.markdown import render
from leaderboard.notes import GENERAL_NOTES
from leaderboard.tables import document
from tests.helpers.runs import build_main_run, entry

T2, T1 = 4.302653, 12.706205  # 95 % Student-t critical values, 2 and 1 degrees of freedom
# WebShop score per seed (tests/helpers/runs.py): mean reward of 4 episodes × 100
PRISM_GINI = {0: 87.5, 1: 75.0, 2: 81.25}
RL_ONLY = {0: 75.0, 1: 50.0, 2: 75.0}
SFT_ONLY = {0: 62.5, 1: 50.0, 2: 50.0}
RANDOM = {0: 62.5, 1: 62.5}  # seed 2 failed


def _webshop(tmp_path: Path):
    board = build([load_run(build_main_run(tmp_path / "run"))], compare=False)
    return next(b for b in board.boards if b.env == "webshop"), board


def _interval(differences: list[float], t: float) -> tuple[float, float]:
    return statistics.fmean(differences), t * statistics.stdev(differences) / math.sqrt(len(differences))


def test_prism_variants_are_compared_with_each_reference_seed_by_seed(tmp_path: Path) -> None:
    webshop, _ = _webshop(tmp_path)
    found = {(c.strategy, c.reference): c.difference for c in webshop.comparisons}
    # no sft-then-rl cell in the fixture: no comparison is invented
    assert set(found) == {("prism-gini", "random"), ("prism-gini", "sft-only"), ("prism-gini", "rl-only")}
    for reference, scores, t in (("rl-only", RL_ONLY, T2), ("sft-only", SFT_ONLY, T2), ("random", RANDOM, T1)):
        differences = [PRISM_GINI[seed] - scores[seed] for seed in sorted(scores)]  # only the seeds both have
        mean, half_width = _interval(differences, t)
        got = found[("prism-gini", reference)]
        assert got.values == pytest.approx(tuple(differences))
        assert got.mean == pytest.approx(mean) and got.half_width == pytest.approx(half_width, rel=1e-6)
    assert found[("prism-gini", "random")].values == (25.0, 12.5)  # 87.5 − 62.5, 75 − 62.5


def test_every_row_has_its_score_difference_to_rl_only_across_seeds(tmp_path: Path) -> None:
    webshop, _ = _webshop(tmp_path)
    rows = {row.strategy: row for row in webshop.rows}
    sft = rows["sft-only"].vs_rl_only
    assert sft.values == (-12.5, 0.0, -25.0)
    assert (sft.mean, sft.half_width) == pytest.approx(_interval([-12.5, 0.0, -25.0], T2))
    assert rows["rl-only"].vs_rl_only is None


def test_grpo_signal_is_read_from_the_ledgers(tmp_path: Path) -> None:
    root = build_main_run(tmp_path / "run")
    for seed, (signal, kl) in enumerate([(3, 0.02), (1, 0.01), (0, 0.0)]):
        cell = root / "cells" / f"webshop__rl-only__seed{seed}" / "ledger.jsonl"
        append_jsonl(cell, [entry("rl_update", 1e12, meta={"iteration": 0, "groups": 4, "groups_with_signal": signal,
                                                            "policy_kl": kl}).to_json()])
    board = build([load_run(root)], compare=False)
    webshop = next(b for b in board.boards if b.env == "webshop")
    rl = next(row for row in webshop.rows if row.strategy == "rl-only").rl
    assert (rl.iterations, rl.groups, rl.groups_with_signal) == (3, 12, 4)
    assert rl.signal_fraction == pytest.approx(4 / 12) and rl.mean_policy_kl == pytest.approx(0.01)
    assert next(row for row in webshop.rows if row.strategy == "sft-only").rl is None
    text = render(document(board, [], [], GENERAL_NOTES))
    assert "GRPO signal" in text and "4/12 (33%)" in text
    assert "PRISM against its references, paired by seed" in text
    assert "rl-only ÷ this" in text
