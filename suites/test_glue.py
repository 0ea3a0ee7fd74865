"""GLUE tier: MiniLM x the real GLUE tasks in GLUE_DIR with a CPU-sized preset (opt-in: `pytest suites/ -m glue`)."""

import pytest

pytestmark = pytest.mark.glue


def test_quality(harness, harness_cell):
    record = harness.fine_tune(harness_cell)
    assert record["predictions"], f"{harness_cell} stored no per-example predictions"
    harness.expect_quality(harness_cell, record)


def test_time_to_quality(harness, harness_cell):
    record = harness.fine_tune(harness_cell)
    assert len(record["epochs"]) >= 2, f"{harness_cell} evaluated fewer than twice during training"
    harness.expect_convergence(harness_cell, record)
