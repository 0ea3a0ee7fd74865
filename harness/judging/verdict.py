"""A verdict: one row of the verdict table, and how its values are written. No statistics, no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IMPROVED, UNCHANGED, REGRESSED, NOT_COMPARABLE = "improved", "unchanged", "regressed", "not comparable"
VERDICTS = (IMPROVED, UNCHANGED, REGRESSED, NOT_COMPARABLE)
JUDGED = (REGRESSED, IMPROVED, UNCHANGED)  # verdicts that compared something: only these give any assurance


@dataclass(frozen=True)
class Verdict:
    """One row of the verdict table. Regression checks return `regression_message()`: a message or None."""

    cell: str  # the judged cell group, "<task>-<model>" (+ "[split]" for tasks with several eval splits)
    kind: str  # the judge's kind: "quality", "convergence", "throughput", "eval set", ...
    metric: str  # what was judged, e.g. "accuracy", "train s/step", "steps to 90% accuracy"
    verdict: str  # one of VERDICTS
    baseline: float | None = None  # baseline value (seed mean, median seconds, median steps)
    now: float | None = None  # current value, same units
    delta: float | None = None  # now - baseline (quality, convergence) or now / baseline - 1 (throughput)
    interval: tuple[float, float] | None = None  # confidence interval of `delta`
    p_value: float | None = None  # two-sided; None where no test applies
    detail: str = ""  # tests used, effect sizes, or why it is not comparable
    relative: bool = False  # `delta` and `interval` are fractions (shown as %)
    extras: Mapping[str, Any] = field(default_factory=dict)  # flip rate, minimum detectable effect, samples, …
    env: str = ""  # the judged environment, when a comparison holds several (e.g. "transformers 5.24.0, torch 2.13")
    note: str = ""  # a short note for the table (the judge's words); `detail` holds everything

    def regression_message(self) -> str | None:
        if self.verdict != REGRESSED:
            return None
        where = f" [{self.env}]" if self.env else ""
        return f"{self.cell}{where} {self.metric}: {format_value(self.baseline)} -> {format_value(self.now)} " \
               f"({format_delta(self)}{', p=' + format_p(self.p_value) if self.p_value is not None else ''}); " \
               f"{self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "kind": self.kind, "metric": self.metric, "verdict": self.verdict,
                "baseline": self.baseline, "now": self.now, "delta": self.delta,
                "interval": list(self.interval) if self.interval else None, "p_value": self.p_value,
                "detail": self.detail, "relative": self.relative, "extras": dict(self.extras),
                "env": self.env, "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        values = dict(data)
        values["interval"] = tuple(values["interval"]) if values.get("interval") else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def not_comparable(cell: str, kind: str, metric: str, why: str, **values: Any) -> Verdict:
    return Verdict(cell=cell, kind=kind, metric=metric, verdict=NOT_COMPARABLE, detail=why, **values)


# ------------------------------------------------------------------------------------------------ formatting

def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value == int(value) and abs(value) >= 10:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def format_delta(verdict: Verdict) -> str:
    if verdict.delta is None:
        return "-"
    if math.isinf(verdict.delta):
        return "+inf"
    return f"{verdict.delta:+.1%}" if verdict.relative else f"{verdict.delta:+.4f}"


def format_interval(verdict: Verdict) -> str:
    if verdict.interval is None:
        return "-"
    lo, hi = verdict.interval
    return f"[{lo:+.1%}, {hi:+.1%}]" if verdict.relative else f"[{lo:+.4f}, {hi:+.4f}]"




def regressions(verdicts: Sequence[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.verdict == REGRESSED]
