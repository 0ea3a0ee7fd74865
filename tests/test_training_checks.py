"""The train() checks on hand-made observations (no Trainer runs): what each invariant reads, so that a defect of
one quantity breaks only the invariant about it."""

from __future__ import annotations

import numpy as np

from harness.contracts.cases import DataSpec
from harness.invariants import TrainCase, Logged, TrainRun, checks
from harness.invariants.driver import interruption

SEEDED = TrainCase(data=DataSpec(rows=4), batch=1, epochs=2, data_seed=3, alt_data_seed=3)


def test_interruption_moves_a_checkpoint_back_inside_the_plan() -> None:
    assert interruption(TrainCase(interrupt_at=3), planned=8) == 3
    assert interruption(TrainCase(interrupt_at=3), planned=2) == 1  # a version that plans fewer steps than documented
    assert interruption(TrainCase(interrupt_at=1), planned=1) is None  # no step after any checkpoint
    assert interruption(TrainCase(), planned=8) is None


def _order(case: TrainCase, batches: tuple[tuple[int, ...], ...], epoch: float) -> TrainRun:
    return TrainRun(case, batches=batches, epoch=epoch)


def test_data_seed_judges_a_run_cut_short_on_what_it_saw() -> None:
    # 4.46-style: the run stops 2/4 into its second epoch (a steps defect, reported by the steps invariant)
    cut = ((3,), (0,), (1,), (2,), (2,), (0,))
    assert checks.data_seed(_order(SEEDED, cut, 1.5), _order(SEEDED, cut, 1.5)) == []
    twice = ((3,), (0,), (1,), (2,), (2,), (2,))
    broken = checks.data_seed(_order(SEEDED, twice, 1.5), _order(SEEDED, twice, 1.5))
    assert len(broken) == 1 and "epoch 1 saw examples [2, 2]" in broken[0].detail and "none twice" in broken[0].detail


def test_data_seed_still_requires_every_example_of_a_finished_epoch() -> None:
    one_epoch = TrainCase(data=DataSpec(rows=4), batch=1, epochs=1, data_seed=3, alt_data_seed=3)
    dropped = ((3,), (0,), (1,))  # a sampler losing an example; the run ended where it should
    broken = checks.data_seed(_order(one_epoch, dropped, 1.0), _order(one_epoch, dropped, 1.0))
    assert len(broken) == 1 and "each epoch sees all 4 once" in broken[0].detail
    repeated = ((3,), (0,), (1,), (2,), (2,), (0,), (1,), (1,))
    assert checks.data_seed(_order(SEEDED, repeated, 2.0), _order(SEEDED, repeated, 2.0))


def _decayed(lrs: tuple[float, ...], logged: tuple[float, ...], wd: float = 0.1) -> TrainRun:
    """Zero-loss steps: a weight decays by (1 - lr * wd) per step at the rates `lrs`; the log says `logged`."""
    p0 = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    factor = np.float32(1.0)
    for lr in lrs:
        factor = factor * np.float32(1.0 - lr * wd)
    case = TrainCase(weight_decay=wd, loss_scale=0.0)
    logs = tuple(Logged(step, 0.0, 0.0, lr, step / len(lrs)) for step, lr in enumerate(logged, 1))
    return TrainRun(case, logs=logs, initial={"w": p0, "b": p0.copy()}, params={"w": p0 * factor, "b": p0.copy()},
                       step_lrs=lrs, global_step=len(lrs))


def test_decay_law_reads_the_rate_the_optimizer_applied_not_the_log() -> None:
    applied = (1e-2, 5e-3, 0.0)
    late_log = (5e-3, 0.0, 0.0)  # each step logging the next one's rate
    assert checks.decay_law("weight_decay", "s", _decayed(applied, late_log), frozenset({"w"})) == []
    wrong = _decayed(applied, applied)
    wrong.step_lrs = (1e-2, 1e-2, 1e-2)  # the parameters did not decay at these rates
    broken = checks.decay_law("weight_decay", "s", wrong, frozenset({"w"}))
    assert len(broken) == 1 and broken[0].step == 3 and "w max |difference|" in broken[0].detail


def test_logged_values_that_are_not_finite_never_compare_equal() -> None:
    finite = [Logged(step=1, loss=0.7, grad_norm=1.0, learning_rate=5e-5, epoch=1.0)]
    for bad in (float("nan"), float("inf")):
        broken = [Logged(step=1, loss=bad, grad_norm=1.0, learning_rate=5e-5, epoch=1.0)]
        found = checks.compare_logs("dtype", "bf16 weights", broken, finite, ("loss",), rtol=0.5)
        assert len(found) == 1 and "not finite" in found[0].detail, found
        assert checks.compare_logs("determinism", "twice", broken, broken, ("loss",), rtol=0.0) == []
    assert checks.compare_logs("dtype", "same", finite, finite, ("loss", "grad_norm"), rtol=0.0) == []


def test_a_model_with_nan_weights_is_not_refused_as_dropping_out() -> None:
    import torch

    from harness.invariants.driver import _without_dropout, fresh_model

    model = fresh_model(TrainCase(model="tiny-roberta"))
    with torch.no_grad():
        model.classifier.out_proj.weight.fill_(float("nan"))
    assert _without_dropout(model) is model  # the invariants report the NaN loss; dropout is off
