"""The known-defects registry: version ranges, the verdict a suite test draws, and the suite end to end with a fake
entry (harness.invariants.defects.DEFECTS monkeypatched)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import harness.suite.plugin  # noqa: F401  (imported before pytester's module snapshots)
from harness.core import compat
from harness.invariants import Broken, TrainCase, defects
from harness.invariants.defects import Defect

from test_training_faults import FAULTS

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
LINK = "https://github.com/huggingface/transformers/issues/1"
INSTALLED = str(compat.TRANSFORMERS_VERSION)
BROKEN = Broken("steps", "step accounting (fake)", 5, "no optimizer step 5")


def fake(invariant: str = "steps", versions: str = f"=={INSTALLED}") -> Defect:
    return Defect("fake-defect", invariant, versions, "a defect made up for this test", LINK)


def test_defects_for_filters_by_version_and_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = fake(versions=">=4.46,<4.48"), fake("schedule", ">=4.48")
    monkeypatch.setattr(defects, "DEFECTS", (old, new))
    assert defects.defects_for("4.47.1") == [old]
    assert defects.defects_for("4.48.0") == [new]
    assert defects.defects_for("5.1.0.dev0", "schedule") == [new]  # pre-releases count
    assert defects.defects_for("4.47.1", "schedule") == []
    assert defects.defects_for("4.45.2") == []


def test_registry_entries_are_well_formed() -> None:
    # one defect may have several entries for an invariant (ranges with a gap), but a version is in at most one
    for version in [f"4.{m}.{p}" for m in range(46, 58) for p in range(7)] + [f"5.{m}.{p}" for m in range(40)
                                                                                for p in range(7)]:
        covering = [(d.id, d.invariant) for d in defects.defects_for(version)]
        assert len(set(covering)) == len(covering), version
    assert all(d.link.startswith("https://github.com/") and d.summary for d in defects.DEFECTS)
    with pytest.raises(ValueError, match="unknown invariant"):
        fake("accumulations")
    with pytest.raises(ValueError):
        fake(versions="4.46 and up")


def test_verdicts() -> None:
    drawn, own = TrainCase(seed=1), TrainCase(seed=2)
    assert defects.verdict([], {drawn: [BROKEN]}, INSTALLED).outcome == "pass"  # the test fails on the break itself
    reproduced = defects.verdict([fake()], {drawn: [], own: [BROKEN]}, INSTALLED)
    assert reproduced.outcome == "xfail"
    assert "fake-defect" in reproduced.message and LINK in reproduced.message and str(BROKEN) in reproduced.message
    fixed = defects.verdict([fake()], {drawn: []}, INSTALLED)
    assert fixed.outcome == "fail"
    assert f"known defect fake-defect no longer reproduces on transformers {INSTALLED}" in fixed.message
    assert "narrow its version range" in fixed.message
    with_case = dataclasses.replace(fake(), case=own)  # only its own case counts
    assert defects.verdict([with_case], {drawn: [BROKEN], own: []}, INSTALLED).outcome == "fail"
    assert defects.verdict([with_case], {drawn: [], own: [BROKEN]}, INSTALLED).outcome == "xfail"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_copy_training=(REPO / "suites" / "test_training.py").read_text())
    return pytester


def test_suite_reports_a_defect_that_no_longer_reproduces(suite: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defects, "DEFECTS", (fake(),))
    result = suite.runpytest_inprocess("-p", "harness.suite.plugin", "-k", "steps and not cuda", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*known defect fake-defect no longer reproduces*narrow its version range*"])


def test_suite_expects_a_defect_that_reproduces(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defects, "DEFECTS", (fake(),))
    next(f for f in FAULTS if f.invariant == "steps").inject(monkeypatch)
    result = suite.runpytest_inprocess("-p", "harness.suite.plugin", "-k", "steps and not cuda", "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*known defect(s) on transformers*", "*fake-defect*", "*no optimizer step*"])


def test_suite_fails_on_a_break_no_defect_covers(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defects, "DEFECTS", (fake(versions="<4.0"),))
    next(f for f in FAULTS if f.invariant == "steps").inject(monkeypatch)
    result = suite.runpytest_inprocess("-p", "harness.suite.plugin", "-k", "steps and not cuda")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]steps[]] step accounting*", "*reproduce with:*"])


def test_ignoring_known_defects_makes_them_plain_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.invariants import defects

    assert [d.id for d in defects.expected("5.24.0", "accumulation")] == ["ga-loss-kwargs-dropped"]
    monkeypatch.setenv(defects.IGNORE_ENV, "1")
    assert defects.expected("5.24.0", "accumulation") == []
