"""GLUE tier: MiniLM x the real GLUE tasks in GLUE_DIR with a CPU-sized preset (opt-in: `pytest suites/ -m glue`)."""

import pytest

from harness.suite.tier_tests import test_quality, test_time_to_quality  # noqa: F401  (collected here)

pytestmark = pytest.mark.glue

