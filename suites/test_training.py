"""Training suite (`pytest suites/ -m training`): Trainer.train() invariants as hypothesis property tests over the
six tiny families, each comparing two runs of the real Trainer (or one with the documented formula).

Each test runs its invariant's fixed witness case first, then drawn cases (harness.invariants.strategies), and fails on
the first broken invariant with the case and a snippet that reproduces it. Where a known upstream defect covers the
installed transformers (harness.invariants.defects), the test is an expected failure naming it, and fails if the defect
no longer reproduces. Example counts scale with the hypothesis profile (HARNESS_HYPOTHESIS_PROFILE, `ci` when CI is
set); a failing case is reported as drawn, without shrinking (each shrink step would train twice more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from harness.core import compat
from harness.core.config import RunConfig
from harness.invariants import INVARIANTS, Broken, TrainCase, defects, format_failure, strategies, verify

pytestmark = pytest.mark.training

# Drawn cases per invariant: its share (INVARIANTS[name].share) of the profile's max_examples (ci 25: 4-10 each,
# ~30 s on 2 cores; dev 10: 2-4; nightly 200: 32-80). A case trains one to three times, 0.2-0.6 s each on one CPU
# thread.


def hold(invariant: str, cases: st.SearchStrategy[TrainCase], yours: Sequence[RunConfig] = (),
         stated: Mapping[str, Any] | None = None) -> None:
    """The invariant holds on its witness, on cases around your fine-tuning's settings (`yours`, written with TrainingArguments `stated`) and on drawn
    cases, or fails only as a known defect says it does (each known defect's own case runs first, with the
    witness). A known defect that reproduces is an expected failure, unless your settings trigger it: then the
    test fails, naming it."""
    known = defects.expected(compat.TRANSFORMERS_VERSION, invariant)
    results: dict[TrainCase, list[Broken]] = {}

    def check(case: TrainCase) -> None:
        if known and defects.verdict(known, results, compat.TRANSFORMERS_VERSION).outcome == "xfail":
            return  # every known defect reproduced: the rest would only repeat them
        results[case] = broken = verify(invariant, case)
        assert known or not broken, format_failure(invariant, case, broken)

    examples = given(case=cases)(check)
    witness = INVARIANTS[invariant].witness
    yours_cases = [strategies.around(invariant, witness, config) for config in yours]
    for case in (witness, *(d.case for d in known if d.case is not None), *yours_cases):
        examples = example(case=case)(examples)
    settings(max_examples=max(2, round(settings.default.max_examples * INVARIANTS[invariant].share)),
             phases=(Phase.explicit, Phase.reuse, Phase.generate), deadline=None)(examples)()
    found = defects.verdict(known, results, compat.TRANSFORMERS_VERSION)
    defects.log_outcome(invariant, found, compat.TRANSFORMERS_VERSION)
    if found.outcome == "xfail" and (bites := defects.triggered(found, yours, stated)):
        pytest.fail(bites, pytrace=False)
    if found.outcome == "xfail":
        pytest.xfail(found.message)
    if found.outcome == "fail":
        pytest.fail(found.message, pytrace=False)


@pytest.mark.parametrize("invariant", INVARIANTS)
def test_train_invariant(invariant: str, harness_session) -> None:
    """One invariant of train() (harness.invariants.INVARIANTS) over its witness, your settings' cases
    (--harness-config, harness.toml or [tool.harness]) and drawn cases."""
    hold(invariant, getattr(strategies, INVARIANTS[invariant].strategy)(), harness_session.your_configs,
         harness_session.your_training_arguments)


# On CUDA (opt-in with the gpu tier: `pytest suites/test_training.py -m gpu --harness-tiers gpu`): each invariant's
# witness in the precisions where its check stays meaningful (INVARIANTS[name].cuda_precisions).


@pytest.mark.gpu
@pytest.mark.parametrize(("invariant", "precision"),
                         [(name, precision) for name, spec in INVARIANTS.items() for precision in spec.cuda_precisions])
def test_train_invariant_cuda(invariant: str, precision: str) -> None:
    """One invariant of train() on its witness case, trained on CUDA in `precision`."""
    def on_cuda(case: TrainCase) -> TrainCase:
        return replace(case, device="cuda", precision=precision if case.precision == "fp32" else case.precision)

    case = on_cuda(replace(INVARIANTS[invariant].witness, precision="fp32"))
    known = defects.expected(compat.TRANSFORMERS_VERSION, invariant)
    results = {case: verify(invariant, case)}
    assert known or not results[case], format_failure(invariant, case, results[case])
    for defect in known:  # a known defect's own case, moved to CUDA, stands for it (the verdict looks it up)
        if defect.case is not None:
            results[defect.case] = verify(invariant, on_cuda(defect.case))
    found = defects.verdict(known, results, compat.TRANSFORMERS_VERSION)
    defects.log_outcome(invariant, found, compat.TRANSFORMERS_VERSION)
    if found.outcome == "xfail":
        pytest.xfail(found.message)
    if found.outcome == "fail":
        pytest.fail(found.message, pytrace=False)
