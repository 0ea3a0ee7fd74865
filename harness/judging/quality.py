"""Quality judge: the task's primary metric per eval split over seeds, noise band plus paired per-example test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.core.record import RunRecord
from harness.judging import stats
from harness.judging.comparability import pairable, why_not_comparable
from harness.core.evidence import Evidence
from harness.judging.judge import JudgeSettings, RecordJudge
from harness.judging.stats import SeedResult
from harness.judging.verdict import NOT_COMPARABLE, REGRESSED, Verdict, not_comparable


def split_label(group: str, split: str, splits: Sequence[str]) -> str:
    return f"{group}[{split}]" if len(splits) > 1 else group


def seed_result(record: RunRecord, split: str, metric: str) -> SeedResult:
    """One seed's metric and per-example predictions; predictions misaligned with their ids are left out: of another
    length, or recorded with group_by_length before the runner kept the dataset's order (the Trainer returned them
    shuffled: known defect eval-order-grouped-by-length)."""
    stored = record.split_predictions(split)
    preds, idx, labels = stored.get("predictions"), stored.get("idx"), stored.get("labels") or None
    in_order = stored.get("order") == "dataset" or not record.config.get("group_by_length")
    aligned = in_order and preds is not None and (idx is None or len(idx) == len(preds)) and (
        labels is None or len(labels) == len(preds))
    return SeedResult(seed=record.seed, value=record.metric(split, metric), predictions=preds if aligned else None,
                      labels=labels if aligned else None, idx=idx if aligned else None)


class QualityJudge(RecordJudge):
    kind = "quality"

    def judge_group(self, group: str, now: Sequence[RunRecord], baseline: Sequence[RunRecord],
                    settings: JudgeSettings) -> list[Verdict]:
        metric = now[0].primary_metric
        splits = now[0].eval_splits or (baseline[0].eval_splits if baseline else [])
        ok = [r for r in now if r.ok]
        if not splits or not ok:
            return [not_comparable(group, self.kind, metric, f"the run failed: {now[0].error}")]
        if not baseline:
            return [not_comparable(split_label(group, s, splits), self.kind, metric,
                                   "no baseline for this cell; " + settings.missing_hint,
                                   now=_mean(r.metric(s, metric) for r in ok)) for s in splits]
        by_seed = {b.seed: b for b in baseline}
        why_not, pair, notes = None, True, []
        for record in now:
            reference = by_seed.get(record.seed, baseline[0])
            why_not = why_not or why_not_comparable(reference, record, hint=settings.missing_hint)
            unpaired = pairable(reference, record)
            if unpaired:
                pair = False
                notes.append(unpaired)
        missing = sorted({r.seed for r in now} - set(by_seed))
        if missing:
            notes.append(f"seed(s) {missing} have no baseline: judged on the noise band only")
        verdicts = []
        for split in splits:
            candidate = [seed_result(r, split, metric) for r in ok]
            unscored = [c.seed for c in candidate if not _finite(c.value)]
            scored_before = [b for b in baseline if _finite(b.metric(split, metric))]
            if unscored and not scored_before:
                verdicts.append(not_comparable(split_label(group, split, splits), self.kind, metric,
                                               f"the baseline has no {metric} either: nothing to judge"))
                continue
            if unscored and not why_not:  # the baseline scored this cell; a run that did not is broken, not noise
                verdicts.append(_with_values(Verdict(
                    cell=split_label(group, split, splits), kind=self.kind, metric=metric, verdict=REGRESSED,
                    detail=f"seed(s) {unscored}: no {metric} (NaN or missing) where the baseline has one"),
                    baseline, ok, split, metric))
                continue
            misaligned = [c.seed for c, r in zip(candidate, ok)
                          if c.predictions is None and r.split_predictions(split).get("predictions") is not None]
            if misaligned:
                notes.append(f"seed(s) {misaligned}: predictions not aligned with their eval ids, unpaired")
            verdict = stats.quality_verdict(
                kind=self.kind, cell=split_label(group, split, splits), metric=metric,
                baseline=[seed_result(b, split, metric) for b in baseline], candidate=candidate,
                higher_is_better=ok[0].higher_is_better, is_regression=ok[0].is_regression, pairable=pair,
                alpha=settings.alpha, why_not=why_not, notes=sorted(set(notes)))
            if verdict.verdict == NOT_COMPARABLE and verdict.now is None:  # still show both values
                verdict = _with_values(verdict, baseline, ok, split, metric)
            verdicts.append(verdict)
        return verdicts

    def baseline_items(self, evidence: Evidence) -> list[RunRecord]:
        return [r for records in evidence.latest_records().values() for r in records if r.ok]

    def note(self, verdict: Verdict) -> str:
        if verdict.verdict == NOT_COMPARABLE:
            return verdict.detail
        extras, parts = verdict.extras, []
        if "flip_rate" in extras:
            parts.append(f"{extras['flip_rate']:.1%} preds changed")
        parts.append(f"MDE {extras.get('mde', float('nan')):.3f}")
        parts.append(f"{extras.get('seeds_now', '?')} seed(s)")
        return ", ".join(parts)


def _mean(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def _with_values(verdict: Verdict, baseline: Sequence[RunRecord], now: Sequence[RunRecord], split: str,
                 metric: str) -> Verdict:
    return replace(verdict, baseline=_mean(b.metric(split, metric) for b in baseline),
                   now=_mean(r.metric(split, metric) for r in now))


def _finite(value: float | None) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
