"""The registered judges, in table order, and the one pipeline that runs them over two sides of a comparison."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from harness.judging import convergence
from harness.judging.convergence import ConvergenceJudge
from harness.judging.eval_set import EvalSetJudge
from harness.core.evidence import Evidence, Measurement
from harness.core.record import RunRecord
from harness.base.registry import Registry
from harness.judging.judge import Judge, JudgeSettings
from harness.judging.quality import QualityJudge
from harness.judging.throughput import ThroughputJudge
from harness.judging.verdict import Verdict

JUDGES: Registry[Judge] = Registry("verdict kind", (QualityJudge(), EvalSetJudge(), ConvergenceJudge(),
                                                    ThroughputJudge()), key=lambda judge: judge.kind)


def judges(kinds: Iterable[str] | None = None) -> list[Judge]:
    """The registered judges in table order, or those of `kinds` (each looked up: a typo is an UnknownNameError)."""
    wanted = set(JUDGES) if kinds is None else {JUDGES[kind].kind for kind in kinds}
    return [j for j in JUDGES.values() if j.kind in wanted]


def judge(candidate: Evidence, baseline: Evidence, settings: JudgeSettings = JudgeSettings(), *,
          kinds: Iterable[str] | None = None) -> list[Verdict]:
    """Every verdict of every selected kind: each candidate (environment, group) against the baseline's group.

    The baseline side's newest environment per group is its reference; when the candidate holds several
    environments, each verdict names the one it judged. A convergence 'never reached' is then read next to the
    quality verdict of the same cell (convergence.reconcile), so every caller gets judges that agree."""
    labels = candidate.env_labels()
    several = len(candidate.environments()) > 1
    judged: list[tuple[Judge, Verdict]] = []
    for current in judges(kinds):
        reference = _newest_per_group(current.collect(baseline))
        for (env, group), items in sorted(current.collect(candidate).items(), key=lambda kv: (kv[0][1], kv[0][0])):
            for verdict in current.judge_group(group, items, reference.get(group, []), settings):
                judged.append((current, dataclasses.replace(verdict, env=labels.get(env, env) if several else "")))
    verdicts = [v for _, v in judged]
    agreed = [(j, _agreed(v, verdicts)) for j, v in judged]
    return [dataclasses.replace(v, note=j.note(v)) for j, v in agreed]


def _agreed(verdict: Verdict, verdicts: Sequence[Verdict]) -> Verdict:
    """Judges of one cell that must agree: a convergence 'never reached' against the quality verdict of the split
    it was measured on (see convergence.reconcile); every other verdict as it is."""
    if verdict.kind != ConvergenceJudge.kind:
        return verdict
    cells = (verdict.cell, f"{verdict.cell}[{verdict.extras.get('split')}]")  # quality labels a split when several
    quality = next((q for q in verdicts if q.kind == QualityJudge.kind and q.env == verdict.env and q.cell in cells),
                   None)  # None where the quality kind was not judged in this call
    return convergence.reconcile(verdict, quality)


def baseline_items(candidate: Evidence, kinds: Iterable[str] | None = None) -> list[RunRecord | Measurement]:
    """Every record and measurement that accepting `candidate` stores as a baseline (once each)."""
    items: list[RunRecord | Measurement] = []
    for current in judges(kinds):
        items += [i for i in current.baseline_items(candidate) if not any(i is seen for seen in items)]
    return items


def _newest_per_group(grouped: dict[tuple[str, str], Sequence]) -> dict[str, Sequence]:
    newest: dict[str, tuple[str, Sequence]] = {}
    for (env, group), items in grouped.items():
        stamp = max((getattr(i, "created_at", "") or getattr(i, "measured_at", "") for i in items), default="")
        if group not in newest or stamp > newest[group][0]:
            newest[group] = (stamp, items)
    return {group: items for group, (_, items) in newest.items()}
