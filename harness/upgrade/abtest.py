"""Interleaved throughput A/B: the old and the new environment timed on the same machine, round after round.

Each side's worker (harness.upgrade.worker) prepares each cell once; rounds then alternate between the sides in an
A B B A pattern, so a drift of the machine's speed (a neighbour, thermal state, frequency) falls on both sides alike
instead of on whichever ran second. The first round of each side and cell is a warm-up and is dropped. The verdict
is the suites' throughput test (Mann-Whitney U on per-step seconds plus a minimum effect on the ratio of medians);
what it could have seen is reported too: the smallest slowdown detectable at `alpha` with 80 % power. Steps within
a round share the machine's state of the moment, so a slowdown is only flagged when the rounds agree too: a
Wilcoxon signed-rank test on the per-round ratios of medians (rounds, not steps, are the independent units) must
also reject at `alpha`, and their median must reach the minimum effect.

Sequential: a cell stops before `rounds` once its answer is clear (`settled`): no change, when the verdict's
interval and the rounds' median both lie inside +-(minimum effect / 2); a change beyond doubt, when both tests
already reject and the whole interval lies beyond the minimum effect. Stopping for "no change" cannot add a false
flag, and stopping for a change needs what the final verdict needs; tests/test_upgrade_check.py measures both
error rates on synthetic rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STOP_AFTER = 3  # the fewest timed rounds after which a cell may stop for "no change"


@dataclass
class Samples:
    """Per-step seconds of one side and cell, kept per round."""

    rounds: list[list[float]] = field(default_factory=list)
    busy_cores: list[float] = field(default_factory=list)  # other processes' CPU use during each round
    stopped: str = ""  # why the rounds of this cell ended before the most allowed ("" if they did not)

    @property
    def steps(self) -> list[float]:
        return [s for r in self.rounds for s in r]

    @property
    def round_medians(self) -> list[float]:
        return [statistics.median(r) for r in self.rounds if r]


Timer = Callable[[int], dict[str, Any]]  # one timed round of cell i: {"step_seconds": [...], "busy_cores": x}


def order(round_index: int) -> tuple[int, int]:
    """A B, B A, A B, ...: side indices for one round, alternating so drift hits both sides equally."""
    return (0, 1) if round_index % 2 == 0 else (1, 0)


def interleaved(timers: Sequence[Timer], cells: int, *, rounds: int, alpha: float, min_effect: float,
                progress: Callable[[str], None] = lambda line: None) -> list[tuple[Samples, Samples]]:
    """Per cell, the (old, new) samples of up to `rounds` timed rounds each, after one dropped warm-up round; a
    cell whose answer is settled takes no more rounds. A `progress` line after each round."""
    began = time.perf_counter()
    samples = [(Samples(), Samples()) for _ in range(cells)]
    live = list(range(cells))
    for r in range(rounds + 1):
        for cell in live:
            for index in order(r + cell):
                answer = timers[index](cell)
                if r > 0:  # round 0 warms both sides up
                    samples[cell][index].rounds.append(list(answer["step_seconds"]))
                    if answer.get("busy_cores") is not None:
                        samples[cell][index].busy_cores.append(answer["busy_cores"])
        done = [cell for cell in live if r > 0 and (why := settled(*samples[cell], alpha=alpha,
                                                                    min_effect=min_effect))
                and _stop(samples[cell], f"{why} after {r} round(s)")]
        live = [cell for cell in live if cell not in done]
        what = "warm-up round" if r == 0 else f"round {r} of at most {rounds}"
        progress(f"  {what} done, {len(live) + len(done)} cell(s) x both sides"
                 + (f", {len(done)} settled" if done else "") + f" ({time.perf_counter() - began:.0f} s)")
        if not live:
            break
    return samples


def _stop(pair: tuple[Samples, Samples], why: str) -> bool:
    for side in pair:
        side.stopped = why
    return True


def settled(old: Samples, new: Samples, *, alpha: float, min_effect: float) -> str | None:
    """Why a cell needs no more rounds, or None: "no change" when the verdict's interval (bootstrap of the ratio
    of median step times, at 1 - alpha) and the rounds' median ratio lie inside +-min_effect / 2 (after STOP_AFTER
    rounds); "slower"/"faster" beyond doubt when the paired test already rejects at alpha with its median beyond
    the minimum effect, the step test rejects, and the whole interval lies beyond the minimum effect."""
    from harness.judging import stats

    n = min(len(old.rounds), len(new.rounds))
    if n < STOP_AFTER:
        return None
    verdict = stats.throughput_verdict(kind="throughput", cell="-", metric="s/step", baseline=old.steps,
                                       candidate=new.steps, alpha=alpha, min_effect=min_effect)
    if verdict.interval is None:
        return None
    lo, hi = verdict.interval
    rounds_say = math.expm1(statistics.median(round_log_ratios(old, new)))
    half = min_effect / 2
    if -half < lo and hi < half and abs(rounds_say) < half:
        return f"no change: interval [{lo:+.1%}, {hi:+.1%}] inside ±{half:.1%}"
    paired = paired_test(old, new, alpha=alpha, min_effect=min_effect)
    if paired is None or paired.p_value >= alpha or verdict.p_value is None or verdict.p_value >= alpha:
        return None
    if lo >= min_effect and paired.effect >= min_effect:
        return f"slower beyond doubt: interval [{lo:+.1%}, {hi:+.1%}]"
    if hi <= 1 / (1 + min_effect) - 1 and paired.effect <= 1 / (1 + min_effect) - 1:
        return f"faster beyond doubt: interval [{lo:+.1%}, {hi:+.1%}]"
    return None


def round_log_ratios(old: Samples, new: Samples) -> list[float]:
    """log(new / old) of the per-round medians, round by round: the two rounds of a pair ran back to back, so the
    machine's state of the moment divides out."""
    return [math.log(b / a) for a, b in zip(old.round_medians, new.round_medians)]


@dataclass(frozen=True)
class Paired:
    effect: float  # the slowdown the rounds say: exp(median per-round log ratio) - 1
    p_value: float  # two-sided exact Wilcoxon signed-rank test of the per-round log ratios against 0
    detectable: float  # smallest slowdown (fraction) this run detects at alpha with 80 % power
    rounds: int


def min_rounds(alpha: float) -> int:
    """The fewest rounds with which the two-sided exact signed-rank test can reject at `alpha`: its smallest p
    value, every ratio on one side, is 2 / 2**rounds (8 at alpha 0.01, 6 at 0.05)."""
    return max(2, math.ceil(1 + math.log2(1 / alpha) - 1e-9))


def paired_test(old: Samples, new: Samples, *, alpha: float, min_effect: float = 0.0,
                power: float = 0.8) -> Paired | None:
    """The rounds as the independent units: Wilcoxon signed-rank on per-round log ratios (one round disturbed by a
    neighbour moves a rank, not the verdict); None with fewer than min_rounds(alpha) rounds (it could not reject). `detectable`: from a robust
    spread of the ratios (1.4826 x MAD), the slowdown flagged with `power`, honouring the minimum effect (a true
    slowdown just at `min_effect` is measured below it half the time)."""
    from scipy import stats

    ratios = round_log_ratios(old, new)
    n = len(ratios)
    if n < min_rounds(alpha):
        return None
    centre = statistics.median(ratios)
    if all(r == 0 for r in ratios):
        return Paired(0.0, 1.0, 0.0, n)
    p = float(stats.wilcoxon(ratios, method="exact").pvalue) if len(set(ratios)) == n else \
        float(stats.wilcoxon(ratios).pvalue)
    spread = 1.4826 * statistics.median(abs(r - centre) for r in ratios) or statistics.stdev(ratios)
    se = spread / math.sqrt(n)
    reject, beyond = float(stats.t.ppf(1 - alpha / 2, n - 1)), float(stats.t.ppf(power, n - 1))
    # the median of the ratios, which must reach min_effect, varies sqrt(pi / 2) times more than their mean
    needed = max((reject + beyond) * se, math.log1p(min_effect) + beyond * math.sqrt(math.pi / 2) * se)
    return Paired(math.expm1(centre), p, math.expm1(needed), n)
