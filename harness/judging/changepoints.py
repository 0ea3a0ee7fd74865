"""Where a nightly series changed level, by how much, and how sure: change-point detection. Pure, no I/O.

A series is one value per night (the mean over the night's seeds), in night order, on one machine. Candidates come
from ruptures' PELT (an exact penalised segmentation, l2 cost) on the series scaled by its robust night-to-night
noise. Each candidate is confirmed by Student's test between the nights just before and just after it (at most
`window` each side, inside the neighbouring segments, at least MIN_SIDE): beyond doubt (p < alpha), and at least
`min_effect` in size, in the means and in the medians (which an outlying night does not move). The newest night,
which no segmentation can split off, is tested against the nights before it with a prediction interval: a night to
watch, not yet a change. Timings are judged on a log scale, so sizes are ratios; metrics on their own scale, in
points. How often noise alone makes a change, and how surely a planted one is found on its night:
tests/test_history.py and results/history/.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_NIGHTS = 6  # fewer and neither the noise nor a segmentation can be estimated
MIN_SIDE = 3  # nights each side a change must hold for (a shorter bump is noise until a third night)
WINDOW = 30  # nights each side a change is confirmed on (at most; the neighbouring changes bound it too)
ALPHA = 0.001  # per candidate
LEVEL = 0.95  # of the interval a change's size is reported with
PENALTY = 5.0  # PELT's penalty per change, times log(nights), on the noise-scaled series


@dataclass(frozen=True)
class Change:
    """A level change at night index `at` (the first night of the new level)."""

    at: int
    size: float  # after - before: a difference on the series' scale, or a ratio - 1 on the log scale
    low: float  # the size's LEVEL interval
    high: float
    p: float  # Welch's two-sided p-value (the prediction test's for the newest night)
    before: int  # nights each side it was judged on
    after: int
    newest: bool = False  # the newest night alone differs: seen once, a night to watch, not a confirmed change

    def worse(self, higher_is_better: bool) -> bool:
        return (self.size < 0) == higher_is_better


def robust_noise(values: Sequence[float]) -> float:
    """The night-to-night standard deviation, from the median absolute first difference (level shifts and single
    outliers barely move it)."""
    diffs = np.diff(np.asarray(values, dtype=float))
    if diffs.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def _candidates(values: np.ndarray, noise: float, penalty: float) -> list[int]:
    import ruptures

    scaled = (values - values.mean()) / noise
    # PELT on the l2 cost (a linear kernel), in ruptures' C implementation: 365 nights in under a millisecond
    found = ruptures.KernelCPD(kernel="linear", min_size=2, jump=1).fit(scaled)
    return [int(end) for end in found.predict(pen=penalty * math.log(len(values))) if end < len(values)]


def _student(before: np.ndarray, after: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """Mean difference after - before, its `level` interval and the two-sided p-value of Student's test: one
    machine's night-to-night noise on both sides of a level change, so the variances are pooled (Welch's test,
    with three nights on one side, would need a third more nights to confirm the same change)."""
    diff = float(after.mean() - before.mean())
    dof = before.size + after.size - 2
    pooled = (before.var(ddof=1) * (before.size - 1) + after.var(ddof=1) * (after.size - 1)) / dof
    se = math.sqrt(pooled * (1 / before.size + 1 / after.size))
    if se == 0:  # both sides constant (deterministic metrics): any difference is certain
        return diff, diff, diff, 0.0 if diff else 1.0
    t = stats.t.ppf((1 + level) / 2, dof)
    p = float(2 * stats.t.sf(abs(diff) / se, dof))
    return diff, diff - t * se, diff + t * se, p


def _newest(values: np.ndarray, start: int, level: float) -> tuple[float, float, float, float]:
    """The newest night against the nights of its segment before it: a prediction interval for one new night."""
    before, last = values[start:-1], float(values[-1])
    diff = last - float(before.mean())
    spread = float(before.std(ddof=1))
    if spread == 0:
        return diff, diff, diff, 0.0 if diff else 1.0
    se = spread * math.sqrt(1 + 1 / before.size)
    t = stats.t.ppf((1 + level) / 2, before.size - 1)
    p = float(2 * stats.t.sf(abs(diff) / se, before.size - 1))
    return diff, diff - t * se, diff + t * se, p


def _as_size(diff: float, low: float, high: float, log: bool) -> tuple[float, float, float]:
    return (math.expm1(diff), math.expm1(low), math.expm1(high)) if log else (diff, low, high)


def changes(values: Sequence[float], *, log: bool, min_effect: float, alpha: float = ALPHA, window: int = WINDOW,
            penalty: float = PENALTY, level: float = LEVEL) -> list[Change]:
    """Confirmed level changes of a nightly series, oldest first ([] for a series shorter than MIN_NIGHTS).

    `log`: judge ratios (timings, memory, MFU; values must be positive); `min_effect`: the smallest size that counts,
    a ratio - 1 with `log` (0.03 = 3 %), else in the values' units."""
    series = np.asarray(values, dtype=float)
    if series.size < MIN_NIGHTS or not np.isfinite(series).all():
        return []
    if log:
        series = np.log(series)
    # a floor under the noise: a constant series (deterministic metrics) must still scale, and any change in it of
    # min_effect or more is real
    floor = math.log1p(min_effect) / 10 if log else min_effect / 10
    noise = max(robust_noise(series), floor)
    bounds = [0, *_candidates(series, noise, penalty), series.size]
    found: list[Change] = []
    for i in range(1, len(bounds) - 1):
        at = bounds[i]
        before = series[max(bounds[i - 1], at - window):at]
        after = series[at:min(bounds[i + 1], at + window)]
        diff, low, high, p = _student(before, after, level)
        size, low, high = _as_size(diff, low, high, log)
        # the medians must move too: an outlying night or two moves a mean past min_effect, not a median
        moved = _as_size(float(np.median(after) - np.median(before)), 0.0, 0.0, log)[0]
        if (p < alpha and min(abs(size), abs(moved)) >= min_effect and moved * size > 0
                and min(before.size, after.size) >= MIN_SIDE):
            found.append(Change(at, size, low, high, p, before.size, after.size))
    start = max(found[-1].at if found else 0, series.size - 1 - window)
    if series.size - 1 - start >= MIN_NIGHTS - 1:
        diff, low, high, p = _newest(series, start, level)
        size, low, high = _as_size(diff, low, high, log)
        if p < alpha and abs(size) >= min_effect:
            found.append(Change(series.size - 1, size, low, high, p, series.size - 1 - start, 1, newest=True))
    return found
