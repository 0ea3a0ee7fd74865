"""Eval-set judge: predict() must score every eval example, as many as the baseline did. A changed count is a
regression in itself (a dropped partial batch, a filtered row), and a quality comparison on it would mislead."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.record import RunRecord
from harness.core.evidence import data_identity
from harness.judging.judge import JudgeSettings, RecordJudge
from harness.judging.quality import split_label
from harness.judging.verdict import REGRESSED, UNCHANGED, Verdict, not_comparable


def scored(record: RunRecord, split: str) -> tuple[int | None, int | None]:
    """(predictions returned by predict(), eval examples it was given) for one split."""
    stored = record.split_predictions(split)
    predictions = stored.get("predictions")
    rows = (record.data.get("rows") or {}).get(split)
    examples = rows if rows is not None else (len(stored["idx"]) if stored.get("idx") is not None else None)
    return (len(predictions) if predictions is not None else None), examples


class EvalSetJudge(RecordJudge):
    kind = "eval set"

    def judge_group(self, group: str, now: Sequence[RunRecord], baseline: Sequence[RunRecord],
                    settings: JudgeSettings) -> list[Verdict]:
        ok = [r for r in now if r.ok]
        if not ok:
            return []  # the quality judge reports the failure
        splits = ok[0].eval_splits
        by_seed = {b.seed: b for b in baseline}
        verdicts = []
        for split in splits:
            cell = split_label(group, split, splits)
            problems, counts, base_counts = [], [], []
            for record in ok:
                predicted, examples = scored(record, split)
                counts.append(predicted)
                if predicted is not None and examples is not None and predicted != examples:
                    problems.append(f"seed {record.seed}: predict() returned {predicted} predictions for "
                                    f"{examples} eval examples")
                reference = by_seed.get(record.seed)
                if reference is None or data_identity(reference.data) != data_identity(record.data):
                    continue  # other data: nothing to hold the count against (quality says why)
                before, _ = scored(reference, split)
                base_counts.append(before)
                if before is not None and predicted is not None and before != predicted:
                    problems.append(f"seed {record.seed}: {predicted} eval predictions now, {before} in the "
                                    "baseline on the same data")
            now_n = counts[0] if counts else None
            base_n = base_counts[0] if base_counts else None
            if now_n is None:
                verdicts.append(not_comparable(cell, self.kind, "eval examples scored",
                                               "no per-example predictions stored"))
            elif problems:
                verdicts.append(Verdict(cell=cell, kind=self.kind, metric="eval examples scored", verdict=REGRESSED,
                                        baseline=base_n, now=now_n,
                                        delta=None if base_n is None else now_n - base_n, detail="; ".join(problems)))
            elif base_n is None:  # one per example, but nothing to call it unchanged against
                verdicts.append(not_comparable(cell, self.kind, "eval examples scored",
                                               f"{now_n} predictions, one per eval example; no baseline run on the "
                                               "same data to compare", now=now_n))
            else:
                verdicts.append(Verdict(cell=cell, kind=self.kind, metric="eval examples scored", verdict=UNCHANGED,
                                        baseline=base_n, now=now_n, delta=0.0,
                                        detail=f"{now_n} predictions, one per eval example"))
        return verdicts
