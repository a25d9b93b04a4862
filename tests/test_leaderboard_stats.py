"""Intervals over seeds: Student-t critical values against published tables, and the one-seed case."""

from __future__ import annotations

import math

import pytest

from leaderboard.stats import estimate, t_critical

# Two-sided 95 % (and one 99 %) critical values from standard t tables.
T_TABLE = {(1, 0.95): 12.7062, (2, 0.95): 4.3027, (3, 0.95): 3.1824, (4, 0.95): 2.7764, (9, 0.95): 2.2622,
           (30, 0.95): 2.0423, (120, 0.95): 1.9799, (4, 0.99): 4.6041}


@pytest.mark.parametrize(("df", "confidence"), sorted(T_TABLE))
def test_t_critical_matches_tables(df: int, confidence: float) -> None:
    assert t_critical(df, confidence) == pytest.approx(T_TABLE[df, confidence], abs=1e-4)


def test_t_critical_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical(0)
    with pytest.raises(ValueError, match="confidence"):
        t_critical(3, 1.0)


def test_three_seeds_give_a_student_t_interval() -> None:
    value = estimate([50.0, 60.0, 70.0])
    assert value.mean == 60.0 and value.n == 3
    assert value.half_width == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-6)
    assert (value.low, value.high) == pytest.approx((60 - value.half_width, 60 + value.half_width))


def test_one_seed_gives_no_interval_and_no_values_give_nothing() -> None:
    value = estimate([42.0])
    assert (value.mean, value.n, value.half_width) == (42.0, 1, None)
    assert (value.low, value.high) == (42.0, 42.0)
    assert estimate([]) is None
