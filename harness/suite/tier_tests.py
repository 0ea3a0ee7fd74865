"""The tests every tier suite runs on each of its cells; a tier's suite file imports them under its own marker.

Each test fine-tunes nothing itself: `harness_session.fine_tune(cell)` returns the session's single run of the cell,
and the test registers it for judging; the session judges everything after the last test.
"""

from harness.judging.convergence import ConvergenceJudge
from harness.judging.quality import QualityJudge


def test_quality(harness_session, harness_cell):
    record = harness_session.fine_tune(harness_cell)
    assert record.predictions, f"{harness_cell} stored no per-example predictions"
    harness_session.expect(QualityJudge.kind, harness_cell, record)


def test_time_to_quality(harness_session, harness_cell):
    record = harness_session.fine_tune(harness_cell)
    assert len(record.epochs) >= 2, f"{harness_cell} evaluated fewer than twice during training"
    harness_session.expect(ConvergenceJudge.kind, harness_cell, record)
