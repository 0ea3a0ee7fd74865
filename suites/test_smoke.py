"""Smoke tier: tiny random models x built-in tasks, judged against results/baselines/smoke/."""

import pytest

from harness.suite.tier_tests import test_quality, test_time_to_quality  # noqa: F401  (collected here)

pytestmark = pytest.mark.smoke

