"""Your fine-tuning (the `yours` tier): the cells of --harness-config FILE, harness.toml or pyproject.toml's
[tool.harness], fine-tuned with exactly your settings and judged against results/baselines/yours/."""

import pytest

from harness.suite.tier_tests import test_quality, test_time_to_quality  # noqa: F401  (collected here)

pytestmark = pytest.mark.yours
