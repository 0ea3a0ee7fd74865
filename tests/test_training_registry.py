"""An invariant is one object: registered once, the driver, the defect registry and the failure report take it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.contracts.cases import DataSpec
from harness.invariants import INVARIANTS, Broken, TrainCase, Invariant, TrainRun, defects, format_failure, strategies
from harness.invariants.driver import verify


def whole_epochs(observed: TrainRun) -> list[Broken]:
    """A throwaway invariant: train() ends at a whole epoch."""
    if observed.epoch != round(observed.epoch):
        return [Broken("whole_epochs", f"{observed.case.epochs} epochs", None, f"ended at epoch {observed.epoch}")]
    return []


WITNESS = TrainCase(data=DataSpec(rows=4, seed=1, min_length=2, max_length=6), batch=2, epochs=1)


def test_a_new_invariant_is_one_object() -> None:
    throwaway = Invariant("whole_epochs", "train() ends at a whole epoch", witness=WITNESS, check=whole_epochs,
                          strategy="step_cases", share=0.1)
    with INVARIANTS.added(throwaway):
        assert verify("whole_epochs", WITNESS) == []
        assert verify("whole_epochs", replace(WITNESS, max_steps=1)) != []  # stops half-way through the epoch
        assert "train() ends at a whole epoch" in format_failure("whole_epochs", WITNESS, [])
        defects.Defect("throwaway", "whole_epochs", ">=4.46", "summary", "https://github.com/x/y/issues/1")
        assert callable(getattr(strategies, throwaway.strategy))
    assert "whole_epochs" not in INVARIANTS
    with pytest.raises(ValueError, match="unknown invariant"):
        defects.Defect("throwaway", "whole_epochs", ">=4.46", "summary", "https://github.com/x/y/issues/1")


def test_every_invariant_is_complete() -> None:
    for name, spec in INVARIANTS.items():
        assert spec.name == name and len(spec.wording) > 40
        assert callable(getattr(strategies, spec.strategy)), name
        assert 0 < spec.share <= 1
        assert not (spec.replayed and spec.partner is not None), name
        assert spec.trains or not (spec.partner or spec.replayed or spec.cuda_precisions), name
    with pytest.raises(KeyError, match="Did you mean: accumulation"):
        INVARIANTS["acumulation"]
    with pytest.raises(ValueError, match="registered twice"):
        INVARIANTS.register(INVARIANTS["steps"])
