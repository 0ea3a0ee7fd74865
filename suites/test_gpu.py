"""GPU tier: full checkpoints with run_glue hyperparameters (opt-in: `pytest suites/ -m slow`; needs CUDA)."""

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_quality(harness, harness_cell):
    record = harness.fine_tune(harness_cell)
    harness.expect_quality(harness_cell, record)


def test_time_to_quality(harness, harness_cell):
    record = harness.fine_tune(harness_cell)
    harness.expect_convergence(harness_cell, record)
