"""Trajectory parity: the same cell, seed and data in two environments, compared optimizer step by step. Pure.

Each record keeps the first K optimizer steps' training loss, grad norm and learning rate. Two environments that
compute the same thing give the same numbers up to floating-point noise; the first step where a quantity differs
by more than that is where the new version starts training differently (a changed default, loss normalisation,
schedule, initialisation, kernel).

Tolerance (relative): the larger of
- FLOAT_FLOOR = 1e-5, about 84 float32 ulps (eps = 1.19e-7): a different summation order inside one step (another
  kernel, another reduction tree) moves a loss or a norm by a few ulps, far below this;
- NOISE_FACTOR x the largest relative difference between two runs of one cell inside one environment (the check
  runs one cell twice per side), so a nondeterministic environment widens it by what it really does.
A side whose Trainer rounds what it logs (4.x logs the training loss to 4 decimals, 5.x does not) can only be
compared to that precision: a quantity whose values on one side all sit on a grid of 10^-d also gets half a grid
step of absolute tolerance. Differences compound over steps, so after the first step that exceeds the tolerance
later ones usually do too; the first one is what the report names.

Steady scale: a changed loss normalisation (e.g. a loss multiplied by the gradient-accumulation steps k) shows as
new = k x old at every step, with the gradient norm (logged before clipping) scaled alike. A quantity beyond
tolerance whose ratios new/old, from its first differing step to the last compared one, stay within STEADY_SPREAD
of their median ((max - min) / median, over at least STEADY_STEPS steps) is named with that factor. At the first
differing step both sides start from the same weights, so the ratio is the factor itself; later ones move only as
far as the runs drift apart, which Adam's invariance to a gradient's scale keeps to a few per cent over the first
steps, while a changed schedule, initialisation or data moves them by more (ratios 1.1, 1.3, 1.8 spread 54 %).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.core.record import RunRecord

FLOAT32_EPS = 2.0 ** -23
FLOAT_FLOOR = 1e-5
NOISE_FACTOR = 4.0
STEADY_SPREAD = 0.05  # (max - min) / median of the ratios new/old that still reads as one steady factor
STEADY_STEPS = 2  # fewest ratios a steady scale rests on
QUANTITIES = ("learning_rate", "loss", "grad_norm")  # in the order a cause usually shows: schedule, loss, gradient

IDENTICAL, WITHIN_NOISE, DIFFERS, MISSING = "bit-identical", "within noise", "differs", "not compared"


@dataclass(frozen=True)
class Divergence:
    step: int
    quantity: str
    old: float | None
    new: float | None
    relative: float  # |new - old| / max(|old|, |new|); inf where one side logs nothing


class Scale(NamedTuple):
    factor: float  # median of new / old
    step: int  # the first step it holds from (to the last compared step)


@dataclass(frozen=True)
class Parity:
    cell: str
    status: str  # IDENTICAL, WITHIN_NOISE, DIFFERS or MISSING
    steps: int  # steps compared
    largest: float  # largest relative difference over the compared steps
    tolerance: float
    first: Divergence | None = None  # the first step beyond tolerance
    note: str = ""
    scales: Mapping[str, Scale] = field(default_factory=dict)  # quantity -> steady new/old factor, QUANTITIES order

    def describe(self) -> str:
        if self.status == MISSING:
            return self.note
        if self.first is None:
            extra = "" if self.status == IDENTICAL else f", largest relative difference {self.largest:.1e}"
            return f"{self.steps} steps {self.status}{extra}" + (f" ({self.note})" if self.note else "")
        f = self.first
        differs = (f"{f.quantity} differs from step {f.step}: {_fmt(f.old)} -> {_fmt(f.new)} "
                   f"(relative {f.relative:.1e} > tolerance {self.tolerance:.1e})")
        scaled = ", ".join(f"{q} x{s.factor:#.3g} from step {s.step}" for q, s in self.scales.items())
        return f"{scaled} ({differs})" if scaled else differs


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def relative(a: float | None, b: float | None) -> float:
    if a is None and b is None:
        return 0.0
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if a == b else math.inf
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def _steps(record: RunRecord) -> dict[int, Mapping[str, float | None]]:
    return {int(s["step"]): s for s in record.trajectory}


def largest_difference(a: RunRecord, b: RunRecord) -> float:
    """The largest relative difference over the steps both trajectories hold (0.0 when they hold none)."""
    sa, sb = _steps(a), _steps(b)
    return max((relative(sa[k].get(q), sb[k].get(q)) for k in sa.keys() & sb.keys() for q in QUANTITIES),
               default=0.0)


def tolerance(replicates: Sequence[tuple[RunRecord, RunRecord]]) -> float:
    """FLOAT_FLOOR, or NOISE_FACTOR x what two runs of one cell in one environment differ by, if larger."""
    noise = max((largest_difference(a, b) for a, b in replicates), default=0.0)
    return max(FLOAT_FLOOR, NOISE_FACTOR * noise)


def rounding(record: RunRecord, quantity: str) -> float:
    """Half the grid step of `quantity` when every logged value sits on a grid of 10^-d (d <= 6), else 0.0."""
    values = [s[quantity] for s in record.trajectory if isinstance(s.get(quantity), (int, float))]
    values = [v for v in values if math.isfinite(v) and v != 0]
    for decimals in range(7):
        if len(values) >= 4 and all(abs(v - round(v, decimals)) < 1e-12 for v in values):
            return 0.5 * 10.0 ** -decimals
    return 0.0


def steady_scale(pairs: Sequence[tuple[int, float | None, float | None]], *, tol: float) -> Scale | None:
    """The steady factor new/old over `pairs` (step, old, new), from a quantity's first step beyond tolerance to the
    last compared step; None when the ratios spread by more than STEADY_SPREAD (or the tolerance, if larger),
    rest on fewer than STEADY_STEPS steps, or make a factor within their spread (or the tolerance) of 1.

    Steps where either side logs nothing, or both log 0, are skipped; old 0 with new not 0 is no factor at all."""
    steps, ratios = [], []
    for step, a, b in pairs:
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or a == b == 0:
            continue
        if a == 0:
            return None
        steps.append(step)
        ratios.append(b / a)
    if len(ratios) < STEADY_STEPS:
        return None
    median = statistics.median(ratios)
    if median <= 0:
        return None  # a sign flip is no scale
    spread = (max(ratios) - min(ratios)) / median
    if spread > max(STEADY_SPREAD, tol) or relative(median, 1.0) <= max(spread, tol):
        return None  # not steady, or a factor that cannot be told from 1
    return Scale(median, steps[0])


def compare(old: RunRecord, new: RunRecord, *, tol: float) -> Parity:
    sa, sb = _steps(old), _steps(new)
    common = sorted(sa.keys() & sb.keys())
    grid = {q: max(rounding(old, q), rounding(new, q)) for q in QUANTITIES}
    if not common:
        why = "no trajectory on " + ("either side" if not sa and not sb else "the old side" if not sa else
                                     "the new side")
        return Parity(old.cell, MISSING, 0, 0.0, tol, note=why)
    largest, first, rounded = 0.0, None, set()
    starts: dict[str, int] = {}  # quantity -> its first step beyond tolerance
    for step in common:
        for quantity in QUANTITIES:
            a, b = sa[step].get(quantity), sb[step].get(quantity)
            r = relative(a, b)
            if r > 0 and grid[quantity] and None not in (a, b) and abs(a - b) <= grid[quantity] + 1e-12:
                rounded.add(quantity)  # within the logging precision: not a difference one can see
                continue
            largest = max(largest, r)
            if r > tol:
                starts.setdefault(quantity, step)
                if first is None:
                    first = Divergence(step, quantity, a, b, r)
    status = DIFFERS if first else IDENTICAL if largest == 0.0 and not rounded else WITHIN_NOISE
    note = f"{', '.join(sorted(rounded))} compared at the logged precision" if rounded else ""
    scales = {q: scale for q in QUANTITIES if q in starts and (scale := steady_scale(
        [(k, sa[k].get(q), sb[k].get(q)) for k in common if k >= starts[q]], tol=tol))}
    return Parity(old.cell, status, len(common), largest, tol, first, note, scales)


def parity(old: Sequence[RunRecord], new: Sequence[RunRecord], *,
           replicates: Sequence[tuple[RunRecord, RunRecord]] = ()) -> list[Parity]:
    """One Parity per cell run on both sides (ok runs only), in cell order; cells on one side only say so."""
    tol = tolerance(replicates)
    before: Mapping[str, RunRecord] = {r.cell: r for r in old if r.ok}
    after: Mapping[str, RunRecord] = {r.cell: r for r in new if r.ok}
    out = []
    for cell in sorted(before.keys() | after.keys()):
        if cell in before and cell in after:
            out.append(compare(before[cell], after[cell], tol=tol))
        else:
            side = "new" if cell in before else "old"
            out.append(Parity(cell, MISSING, 0, 0.0, tol, note=f"no successful run on the {side} side"))
    return out
