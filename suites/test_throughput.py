"""Throughput of every selected tier's cells, through pytest-benchmark's pedantic mode.

Each round is a fresh model and Trainer (setup, untimed) running a fixed number of optimizer steps (timed);
`--benchmark-autosave`, `--benchmark-compare` and `--benchmark-compare-fail` work on these rounds as usual, while
the harness judges per-step seconds (warm-up steps excluded) against results/baselines/<tier>/<device class>/.
"""

import pytest

pytestmark = pytest.mark.benchmark


def test_train_throughput(harness_session, harness_bench_cell, benchmark):
    benchmark.group = f"train {harness_bench_cell.group}"
    result = harness_session.measure(harness_bench_cell, "train", benchmark)
    assert result["step_seconds"], "no optimizer step was timed"


def test_eval_throughput(harness_session, harness_bench_cell, benchmark):
    benchmark.group = f"eval {harness_bench_cell.group}"
    result = harness_session.measure(harness_bench_cell, "eval", benchmark)
    assert result["batch_seconds"], "no prediction batch was timed"
