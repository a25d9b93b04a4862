"""Mean and confidence interval over seeds.

Seeds are the unit of replication: each seed is a whole training run, so the interval is a Student-t
interval over per-seed values (not over episodes, which share a seed's model and are not independent
replicates of training). With one seed there is no interval, and none is invented. The same
estimate over paired per-episode differences to the untrained policy (``aggregate``) is labelled as
what it is: evaluation noise for a given trained model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE = 0.95


def _t_central_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (closed form, Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 1:
        series, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            series += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + math.sin(theta) * series)
    series, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):
        series += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * series


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value t such that P(|T| <= t) = ``confidence`` (bisection, exact to 1e-12)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while _t_central_mass(high, df) < confidence:
        low, high = high, high * 2
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2
        if _t_central_mass(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its interval; ``half_width`` is None when one seed gives no interval."""

    mean: float
    values: tuple[float, ...]
    half_width: float | None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return self.mean - (self.half_width or 0.0)

    @property
    def high(self) -> float:
        return self.mean + (self.half_width or 0.0)


def estimate(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean and Student-t interval of per-seed values; None when there are no values at all."""
    values = tuple(float(v) for v in values)
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Estimate(mean, values, None)
    sem = statistics.stdev(values) / math.sqrt(len(values))
    return Estimate(mean, values, t_critical(len(values) - 1, confidence) * sem)
