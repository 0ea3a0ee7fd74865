"""The registered judges, in table order, and the one pipeline that runs them over two sides of a comparison."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from harness.judging.convergence import ConvergenceJudge
from harness.judging.eval_set import EvalSetJudge
from harness.judging.evidence import Evidence
from harness.judging.judge import Judge, JudgeSettings
from harness.judging.quality import QualityJudge
from harness.judging.throughput import ThroughputJudge
from harness.judging.verdict import Verdict

JUDGES: tuple[Judge, ...] = (QualityJudge(), EvalSetJudge(), ConvergenceJudge(), ThroughputJudge())
KINDS: tuple[str, ...] = tuple(j.kind for j in JUDGES)


def judges(kinds: Iterable[str] | None = None) -> list[Judge]:
    return list(JUDGES) if kinds is None else [j for j in JUDGES if j.kind in set(kinds)]


def judge(candidate: Evidence, baseline: Evidence, settings: JudgeSettings = JudgeSettings(), *,
          kinds: Iterable[str] | None = None) -> list[Verdict]:
    """Every verdict of every selected kind: each candidate (environment, group) against the baseline's group.

    The baseline side's newest environment per group is its reference; when the candidate holds several
    environments, each verdict names the one it judged."""
    labels = candidate.env_labels()
    several = len(candidate.environments()) > 1
    verdicts: list[Verdict] = []
    for current in judges(kinds):
        reference = _newest_per_group(current.collect(baseline))
        for (env, group), items in sorted(current.collect(candidate).items(), key=lambda kv: (kv[0][1], kv[0][0])):
            for verdict in current.judge_group(group, items, reference.get(group, []), settings):
                verdicts.append(dataclasses.replace(verdict, env=labels.get(env, env) if several else "",
                                                    note=current.note(verdict)))
    return verdicts


def baseline_payloads(candidate: Evidence, tier: str, kinds: Iterable[str] | None = None) -> dict[str, dict]:
    """Every baseline file (relative path -> payload) that accepting `candidate` writes."""
    out: dict[str, dict] = {}
    for current in judges(kinds):
        out.update(current.baseline_payloads(candidate, tier))
    return out


def _newest_per_group(grouped: dict[tuple[str, str], Sequence]) -> dict[str, Sequence]:
    newest: dict[str, tuple[str, Sequence]] = {}
    for (env, group), items in grouped.items():
        stamp = max((getattr(i, "created_at", "") or getattr(i, "measured_at", "") for i in items), default="")
        if group not in newest or stamp > newest[group][0]:
            newest[group] = (stamp, items)
    return {group: items for group, (_, items) in newest.items()}
