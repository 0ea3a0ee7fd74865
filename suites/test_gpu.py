"""GPU tier: full checkpoints with run_glue hyperparameters (opt-in: `pytest suites/ -m slow`; needs CUDA)."""

import pytest

from harness.suite.tier_tests import test_quality, test_time_to_quality  # noqa: F401  (collected here)

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
