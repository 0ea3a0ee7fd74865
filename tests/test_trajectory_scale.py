"""Trajectory parity names a steady factor between two environments' steps (a loss scaled by k), and only then."""

from __future__ import annotations

import math

import pytest

from harness.core.record import RunRecord
from harness.upgrade import trajectory


def _record(cell: str, steps: list[tuple[float | None, float | None, float | None]]) -> RunRecord:
    return RunRecord(schema_version=2, run_id=cell, cell=cell, created_at="t", status="ok", error=None,
                     config={"seed": 0}, task={}, env={}, data={}, model={},
                     trajectory=[{"step": i + 1, "loss": loss, "grad_norm": g, "learning_rate": lr}
                                 for i, (loss, g, lr) in enumerate(steps)])


# values on no decimal grid (a Trainer that logs at full precision); the learning rate warms up from 0
BASE = [(0.69 * math.exp(-0.013 * i) + 1e-9 * math.pi, 0.3 + 0.0171 * math.sqrt(i + 1), 1.3e-4 * math.e * i)
        for i in range(8)]


def _parity(new: list[tuple[float | None, float | None, float | None]]) -> trajectory.Parity:
    return trajectory.parity([_record("c", BASE)], [_record("c", new)])[0]


def test_a_loss_scaled_by_4_and_a_grad_norm_by_about_3_9_are_named_with_the_step_they_hold_from() -> None:
    wobble = [1.0, 1.01, 0.99, 1.005, 0.995, 1.0, 1.01, 0.99]  # +-1 %: the runs drift apart a little
    scaled = [(4 * loss, 3.9 * g * w, lr) for (loss, g, lr), w in zip(BASE, wobble)]
    result = _parity(scaled)
    assert result.status == trajectory.DIFFERS
    assert set(result.scales) == {"loss", "grad_norm"}  # the unchanged learning rate is not mentioned
    assert result.scales["loss"] == (pytest.approx(4.0), 1)
    factor, step = result.scales["grad_norm"]
    assert factor == pytest.approx(3.9, rel=0.01) and step == 1
    text = result.describe()
    assert text.startswith("loss x4.00 from step 1, grad_norm x3.90 from step 1 (loss differs from step 1: 0.69 -> ")
    assert "> tolerance 1.0e-05)" in text and "learning_rate" not in text


def test_a_factor_that_starts_later_is_named_from_that_step() -> None:
    halved = [(loss, g, lr * (0.5 if i >= 3 else 1)) for i, (loss, g, lr) in enumerate(BASE)]
    result = _parity(halved)
    assert dict(result.scales) == {"learning_rate": (pytest.approx(0.5), 4)}
    assert result.describe().startswith("learning_rate x0.500 from step 4 (learning_rate differs from step 4: ")


def test_noise_within_tolerance_names_no_scale() -> None:
    noisy = [(loss * (1 + 8 * trajectory.FLOAT32_EPS), g * (1 - 8 * trajectory.FLOAT32_EPS), lr)
             for loss, g, lr in BASE]
    result = _parity(noisy)
    assert result.status == trajectory.WITHIN_NOISE and result.scales == {}
    assert " x" not in result.describe()


def test_a_drift_that_grows_over_the_steps_is_no_steady_scale() -> None:
    ratios = [1.1, 1.3, 1.8, 2.5]
    drift = [(loss * r, g * r, lr) for (loss, g, lr), r in zip(BASE, ratios)]
    result = trajectory.parity([_record("c", BASE[:4])], [_record("c", drift)])[0]
    assert result.status == trajectory.DIFFERS and result.first.step == 1
    assert result.scales == {}
    assert result.describe().startswith("loss differs from step 1: ")


@pytest.mark.parametrize("drift, named", [(0.04, True), (0.06, False)])
def test_a_scale_holds_while_its_ratios_spread_by_at_most_5_percent(drift: float, named: bool) -> None:
    # ratios 4.0 ... 4 * (1 + drift), linear over the steps: spread about `drift`
    scaled = [(4 * loss * (1 + drift * i / (len(BASE) - 1)), g, lr) for i, (loss, g, lr) in enumerate(BASE)]
    assert ("loss" in _parity(scaled).scales) is named


def test_steady_scale_skips_missing_values_and_refuses_what_is_no_factor() -> None:
    tol = trajectory.FLOAT_FLOOR
    skipped = trajectory.steady_scale([(1, None, 2.0), (2, 1.0, 2.0), (3, 0.0, 0.0), (4, 2.0, 4.0)], tol=tol)
    assert skipped == (2.0, 2)
    assert trajectory.steady_scale([(1, 1.0, 2.0)], tol=tol) is None  # one step: no steadiness to see
    assert trajectory.steady_scale([(1, 0.0, 1.0), (2, 1.0, 2.0), (3, 1.0, 2.0)], tol=tol) is None  # 0 -> 1
    assert trajectory.steady_scale([(1, 1.0, 0.98), (2, 1.0, 1.02)], tol=tol) is None  # straddles 1
    assert trajectory.steady_scale([(1, 1.0, -2.0), (2, 1.0, -2.0)], tol=tol) is None  # a sign flip
    # a tolerance wider than STEADY_SPREAD (a nondeterministic environment) widens what counts as steady
    wobbly = [(1, 1.0, 2.0), (2, 1.0, 2.2)]
    assert trajectory.steady_scale(wobbly, tol=tol) is None
    assert trajectory.steady_scale(wobbly, tol=0.2) == (pytest.approx(2.1), 1)
