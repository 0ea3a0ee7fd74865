"""The convergence and quality judges of one cell agree: a target 'never reached' is a regression only when the
quality judge finds the final metric worse too; a finite slowdown is judged on its own, as before."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from harness.core.record import RunRecord
from harness.judging import convergence, registry
from harness.core.evidence import Evidence
from harness.judging.judge import JudgeSettings
from harness.judging.verdict import IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED, Verdict, regressions

from test_baselines import make_record

SEEDS = (0, 1, 2)
STRICT = JudgeSettings(ttq_fraction=0.99)  # a target close to the baseline's final value: a small drop misses it


def _records(accuracy: float, *, curve: Sequence[float] | None = None, splits: Sequence[str] = ("validation",),
             spread: float = 0.02) -> list[RunRecord]:
    """One record per seed, their final accuracies `accuracy` -/+ `spread` (seed noise); `curve`: the eval metric
    at steps 10, 20, ... (default: make_record's two evals, 0.7 x final then final)."""
    out = []
    for seed in SEEDS:
        data = make_record(seed=seed, accuracy=accuracy + spread * (seed - 1))
        if curve is not None:
            data["epochs"] = [{"epoch": (i + 1) / len(curve), "step": 10 * (i + 1), "validation": {"accuracy": v}}
                              for i, v in enumerate(curve)]
        for split in splits[1:]:  # further eval splits: copies of the first
            data["metrics"][split] = dict(data["metrics"]["validation"])
            data["predictions"][split] = dict(data["predictions"]["validation"])
            for e in data["epochs"]:
                e[split] = dict(e["validation"])
        out.append(RunRecord.from_dict(data))
    return out


def _judge(now: list[RunRecord], base: list[RunRecord], kinds: Sequence[str] = ("quality", "convergence"),
           settings: JudgeSettings = STRICT) -> dict[str, Verdict]:
    verdicts = registry.judge(Evidence(records=now), Evidence(records=base), settings, kinds=kinds)
    assert len({v.kind for v in verdicts}) == len(verdicts)  # one verdict per kind for one cell and split
    return {v.kind: v for v in verdicts}


def test_never_reached_with_quality_unchanged_is_not_a_regression_and_says_why() -> None:
    # each seed 1.5 points lower: below its target (99 % of its baseline seed's final value) at every eval, but
    # within the quality noise band of seeds 2 points apart
    verdicts = _judge(_records(0.885), _records(0.9))
    quality, conv = verdicts["quality"], verdicts["convergence"]
    assert quality.verdict == UNCHANGED
    assert conv.verdict == NOT_COMPARABLE and math.isinf(conv.now) and conv.baseline == 20  # values still shown
    assert _judge(_records(0.885), _records(0.9), kinds=("convergence",))["convergence"].verdict == REGRESSED
    assert conv.detail.startswith("target never reached, but the final accuracy is within the quality noise band "
                                  f"(quality: unchanged, p {quality.p_value:.3f}): cannot tell slower convergence "
                                  "from seed noise; never reached within the run")
    assert conv.note.startswith("target never reached, but the final accuracy is within the quality noise band")
    assert regressions(list(verdicts.values())) == []


def test_never_reached_with_quality_regressed_stays_a_regression() -> None:
    verdicts = _judge(_records(0.6), _records(0.9))
    assert verdicts["quality"].verdict == REGRESSED
    conv = verdicts["convergence"]
    assert conv.verdict == REGRESSED and math.isinf(conv.now)
    assert "the final accuracy is worse beyond the quality noise band too (quality: regressed, p " in conv.detail
    assert conv.regression_message() is not None


def test_never_reached_without_quality_judged_stays_a_regression_and_says_quality_was_not_consulted() -> None:
    conv = _judge(_records(0.885), _records(0.9), kinds=("convergence",))["convergence"]
    assert conv.verdict == REGRESSED and math.isinf(conv.now)
    assert "quality not consulted" in conv.detail


def test_a_finite_slowdown_is_judged_on_its_own_as_before() -> None:
    base = _records(0.9, curve=[0.85, 0.9, 0.9, 0.9], spread=0)  # reaches 0.81 at step 10
    slow = _records(0.9, curve=[0.5, 0.6, 0.7, 0.9], spread=0)  # ... at step 40, final metric unchanged
    verdicts = _judge(slow, base, settings=JudgeSettings())
    assert verdicts["quality"].verdict == UNCHANGED
    alone = _judge(slow, base, kinds=("convergence",), settings=JudgeSettings())["convergence"]
    assert verdicts["convergence"] == alone
    assert alone.verdict == REGRESSED and (alone.baseline, alone.now) == (10, 40)
    assert "quality" not in alone.detail


def test_with_several_eval_splits_the_quality_verdict_of_the_convergence_split_is_consulted() -> None:
    splits = ("validation", "validation_mismatched")
    verdicts = registry.judge(Evidence(records=_records(0.885, splits=splits)),
                              Evidence(records=_records(0.9, splits=splits)), STRICT, kinds=("quality", "convergence"))
    cells = {(v.kind, v.cell) for v in verdicts}
    assert ("quality", "syn-sst2-tiny-bert[validation]") in cells
    conv, = [v for v in verdicts if v.kind == "convergence"]
    assert conv.verdict == NOT_COMPARABLE and "(quality: unchanged" in conv.detail


def _never(**values: Any) -> Verdict:
    return Verdict(cell="c", kind="convergence", metric="steps to 90% accuracy", verdict=REGRESSED, baseline=640.0,
                   now=math.inf, delta=math.inf, relative=True, detail="never reached within the run", **values)


@pytest.mark.parametrize("quality, expected, words", [
    (Verdict("c", "quality", "pearson", IMPROVED, 0.47, 0.5, p_value=0.001), NOT_COMPARABLE,
     "the quality judge finds the final pearson improved (quality: improved, p 0.001)"),
    (Verdict("c", "quality", "pearson", NOT_COMPARABLE, detail="learning_rate differs; more"), NOT_COMPARABLE,
     "is not comparable by the quality judge (quality: not comparable: learning_rate differs)"),
    (Verdict("c", "quality", "pearson", UNCHANGED, 0.479, 0.422, p_value=0.23), NOT_COMPARABLE,
     "within the quality noise band (quality: unchanged, p 0.230)"),
])
def test_reconcile_reads_never_reached_against_every_quality_verdict(quality: Verdict, expected: str,
                                                                     words: str) -> None:
    agreed = convergence.reconcile(_never(), quality)
    assert agreed.verdict == expected and words in agreed.detail
    assert (agreed.baseline, agreed.now) == (640.0, math.inf)


def test_reconcile_leaves_every_other_convergence_verdict_alone() -> None:
    quality = Verdict("c", "quality", "accuracy", UNCHANGED, 0.9, 0.9, p_value=1.0)
    slower = _never(extras={"steps_now": [1200]})
    slower = Verdict(**{**slower.__dict__, "now": 1200.0, "delta": 1200 / 640 - 1, "detail": "1.88x"})
    assert convergence.reconcile(slower, quality) is slower
    unchanged = Verdict(**{**slower.__dict__, "verdict": UNCHANGED})
    assert convergence.reconcile(unchanged, quality) is unchanged
