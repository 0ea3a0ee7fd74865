"""Time-to-quality judge: optimizer steps (and seconds) until the eval metric first reaches a fraction of the
baseline's final value, per seed; and how its 'never reached' is read next to the quality verdict of the cell."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from harness.core.record import RunRecord
from harness.judging import stats
from harness.judging.comparability import why_not_comparable
from harness.judging.judge import JudgeSettings, RecordJudge
from harness.judging.verdict import (IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED, Verdict, format_p,
                                     not_comparable)

MIN_RATIO = 1.25  # flagged when the median seed needs this many times the baseline's steps (and > 1 eval more)


class ConvergenceJudge(RecordJudge):
    kind = "convergence"

    def judge_group(self, group: str, now: Sequence[RunRecord], baseline: Sequence[RunRecord],
                    settings: JudgeSettings) -> list[Verdict]:
        metric = now[0].primary_metric
        label = f"steps to {settings.ttq_fraction:.0%} {metric}"
        if not baseline:
            return [not_comparable(group, self.kind, label, "no baseline for this cell; " + settings.missing_hint)]
        baseline = [b for b in baseline if b.ok and b.eval_splits]
        if not baseline:
            return [not_comparable(group, self.kind, label, "the baseline's run(s) of this cell failed")]
        split = baseline[0].eval_splits[0]
        by_seed = {b.seed: b for b in baseline}
        why_not = next((w for r in now if (w := why_not_comparable(by_seed.get(r.seed, baseline[0]), r,
                                                                   hint=settings.missing_hint))), None)
        evals = now[0].eval_steps
        if not why_not and len(evals) < 2:
            why_not = "fewer than two evaluations during training (raise evals_per_epoch or epochs)"
        interval = float(min(b - a for a, b in zip(evals, evals[1:]))) if len(evals) > 1 else 0.0
        base = {s: (final, b.curve(split, metric)) for s, b in by_seed.items()
                if (final := b.metric(split, metric)) is not None}
        current = {r.seed: r.curve(split, metric) for r in now if r.ok}
        verdict = stats.convergence_verdict(kind=self.kind, cell=group, metric=metric, fraction=settings.ttq_fraction, baseline=base,
                                            candidate=current, eval_interval=interval,
                                            higher_is_better=now[0].higher_is_better, min_ratio=MIN_RATIO,
                                            why_not=why_not)
        if verdict.verdict == NOT_COMPARABLE:
            return [verdict]
        first = next(r for r in now if r.seed in base)
        seconds = first.seconds_at_step(verdict.now if verdict.now is not None else math.inf)
        base_seconds = by_seed[first.seed].seconds_at_step(verdict.baseline if verdict.baseline is not None
                                                            else math.inf)
        extra = f"; seconds of training to target: {base_seconds} in the baseline, {seconds} now"
        return [dataclasses.replace(verdict, detail=verdict.detail + extra, extras={
            **verdict.extras, "seconds_now": seconds, "seconds_baseline": base_seconds, "split": split})]


def never_reached(verdict: Verdict) -> bool:
    """A convergence regression whose candidate (median seed) never reaches the target within the run."""
    return (verdict.kind == ConvergenceJudge.kind and verdict.verdict == REGRESSED and verdict.now is not None
            and math.isinf(verdict.now))


def reconcile(verdict: Verdict, quality: Verdict | None) -> Verdict:
    """A convergence verdict read next to the quality verdict of the same cell and split (None: not judged).

    'Never reached' means the final metric ended below the target (a fraction of the baseline's final value); by
    itself that cannot tell a slower convergence from a final value a little lower by seed noise, and a step count
    that jumps from finite to never on a small drop is the least robust reading of a curve. So it stays a
    regression only when the quality judge finds the final metric worse beyond its noise band; otherwise it is not
    comparable, saying why. A finite slowdown (640 -> 1200 steps) is left as judged: the candidate did reach the
    target, so its step count is a measurement of its own, held to MIN_RATIO and the eval interval."""
    if not never_reached(verdict):
        return verdict
    if quality is None:
        return dataclasses.replace(verdict, detail=verdict.detail + "; quality not consulted (not judged in this "
                                   "comparison): 'never reached' not checked against the final metric's noise band")
    judged = f"quality: {quality.verdict}" + (f", p {format_p(quality.p_value)}" if quality.p_value is not None
                                               else "")
    if quality.verdict == REGRESSED:
        return dataclasses.replace(verdict, detail=f"{verdict.detail}; the final {quality.metric} is worse beyond "
                                                   f"the quality noise band too ({judged})")
    why = {UNCHANGED: f"the final {quality.metric} is within the quality noise band ({judged})",
           IMPROVED: f"the quality judge finds the final {quality.metric} improved ({judged})"}.get(
        quality.verdict, f"the final {quality.metric} is not comparable by the quality judge ({judged}: "
                         f"{quality.detail.split('; ')[0]})")
    return dataclasses.replace(verdict, verdict=NOT_COMPARABLE, detail=f"target never reached, but {why}: cannot "
                               f"tell slower convergence from seed noise; {verdict.detail}")
