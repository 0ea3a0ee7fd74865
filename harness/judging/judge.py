"""The one interface every verdict kind implements: collect, judge, baseline payload, note.

A judge is a small stateless object. `collect` picks and groups the evidence it looks at, per (environment, cell
group); `judge_group` compares one group's candidate items with the baseline's; `baseline_items` says which
records and measurements accepting the candidate stores; `note` is its short word in the verdict table. Adding a verdict
kind = one module with a Judge subclass + one line in harness/judging/registry.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.core.record import RunRecord
from harness.core.evidence import Evidence, Measurement
from harness.judging.verdict import Verdict

Key = tuple[str, str]  # (env_key, cell group)


@dataclass(frozen=True)
class JudgeSettings:
    alpha: float = 0.01  # significance level of every test
    ttq_fraction: float = 0.9  # time-to-quality target, as a fraction of the baseline's final metric
    min_slowdown: float = 0.10  # smallest throughput change flagged (benchmark rounds)
    # ... and for step times taken inside whole fine-tuning runs: identical code on a quiet 2-core machine gave
    # -9.2 % .. +4.4 % between two `harness run --tier smoke` runs (6 cells), so less than 20 % is not flagged.
    min_slowdown_run: float = 0.20
    speed_tolerance: float = 0.10  # machine reference workload drift allowed for a throughput verdict
    busy_tolerance: float = 0.25  # other processes' CPU use (cores) allowed to differ from the baseline's
    missing_hint: str = ("create it with `pytest suites/ --harness-update-baselines` "
                         "(add the same -m/-k/--harness-* options)")  # how to get a baseline that is missing


class Judge(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def collect(self, evidence: Evidence) -> dict[Key, Sequence[Any]]:
        """The items this judge looks at, grouped by (env_key, cell group)."""

    @abstractmethod
    def judge_group(self, group: str, now: Sequence[Any], baseline: Sequence[Any],
                    settings: JudgeSettings) -> list[Verdict]:
        """Verdicts for one cell group: candidate items against the baseline's (empty when it has none)."""

    def baseline_items(self, evidence: Evidence) -> Sequence[RunRecord | Measurement]:
        """The records and measurements that accepting this evidence stores as baselines (harness.store.baselines
        writes them)."""
        return ()

    def note(self, verdict: Verdict) -> str:
        return verdict.detail.split("; ")[0]


class RecordJudge(Judge):
    """A judge of run records: the newest record per seed of each (environment, cell group)."""

    def collect(self, evidence: Evidence) -> dict[Key, Sequence[RunRecord]]:
        return evidence.latest_records()
