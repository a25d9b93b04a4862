"""How concentrated a gradient is across weight matrices: Gini, coefficient of variation, kurtosis.

Input: one non-negative number per projection matrix (its gradient's Frobenius norm, optionally
size-normalised). All three statistics are scale-free, so they compare trajectories whose loss
magnitudes differ. Pure Python: routers and the leaderboard use these without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _checked(values: Sequence[float]) -> list[float]:
    xs = [float(v) for v in values]
    if len(xs) < 2:
        raise ValueError(f"concentration needs at least 2 values, got {len(xs)}")
    if any(not math.isfinite(v) or v < 0 for v in xs):
        raise ValueError("concentration is defined for finite non-negative values only")
    if not any(xs):
        raise ValueError("all values are zero: the gradient vanished, concentration is undefined")
    return xs


def gini(values: Sequence[float]) -> float:
    """Gini coefficient: 0 when all matrices get the same norm, → 1 when one matrix gets all of it.

    ``G = Σ_i (2i − n − 1)·x_(i) / (n·Σx)`` over the values sorted ascending (i from 1).
    """
    xs = sorted(_checked(values))
    n = len(xs)
    return sum((2 * i - n - 1) * x for i, x in enumerate(xs, start=1)) / (n * sum(xs))


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Population standard deviation over mean."""
    xs = _checked(values)
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)) / mean


def kurtosis(values: Sequence[float]) -> float:
    """Excess (Fisher) kurtosis with population moments, as ``scipy.stats.kurtosis`` by default.

    Heavy tails (a few matrices far above the rest) give large values; all-equal values give −3
    by convention here (zero variance).
    """
    xs = _checked(values)
    n = len(xs)
    mean = sum(xs) / n
    m2 = sum((x - mean) ** 2 for x in xs) / n
    if m2 == 0:
        return -3.0
    m4 = sum((x - mean) ** 4 for x in xs) / n
    return m4 / (m2 * m2) - 3.0


def total_norm(values: Sequence[float]) -> float:
    """Norm of the whole gradient restricted to these matrices: ``sqrt(Σ x²)``."""
    return math.sqrt(sum(float(v) ** 2 for v in values))


STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "gini": gini,
    "cv": coefficient_of_variation,
    "kurtosis": kurtosis,
    "grad_norm": total_norm,
}

# How per-matrix norms may be normalised by matrix size before the statistics.
NORMALIZATIONS: dict[str, Callable[[float, int], float]] = {
    "none": lambda norm, numel: norm,
    "numel": lambda norm, numel: norm / numel,
    "sqrt-numel": lambda norm, numel: norm / math.sqrt(numel),
}


def normalize(norms: Sequence[float], numels: Sequence[int], how: str) -> list[float]:
    """Apply one of :data:`NORMALIZATIONS` (``sqrt-numel`` turns a Frobenius norm into an RMS)."""
    try:
        fn = NORMALIZATIONS[how]
    except KeyError:
        raise ValueError(f"unknown normalization {how!r}; choose from {', '.join(NORMALIZATIONS)}") from None
    if len(norms) != len(numels):
        raise ValueError(f"{len(norms)} norms but {len(numels)} matrix sizes")
    return [fn(float(n), int(k)) for n, k in zip(norms, numels, strict=True)]
