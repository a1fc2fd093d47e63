"""Small statistics: medians, percentiles and ratios that tolerate missing values."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["line_fit", "median", "percentile", "ratio", "summary"]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def line_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``y = a + b x`` through ``points``: (a, b); None for fewer than three or one x only."""
    if len(points) < 3:
        return None
    try:
        slope, intercept = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    except statistics.StatisticsError:  # every x the same: no slope to fit
        return None
    return intercept, slope
