"""Root conftest: hypothesis settings profiles, chosen by HARNESS_HYPOTHESIS_PROFILE (default: ci on CI, else dev)."""

import os

from hypothesis import HealthCheck, settings

# The harness pytest plugin (options --harness-*, markers, verdicts); also a pytest11 entry point when installed.
pytest_plugins = ["harness.suite.plugin"]

_CPU_FRIENDLY = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
settings.register_profile("dev", max_examples=10, **_CPU_FRIENDLY)
settings.register_profile("ci", max_examples=25, derandomize=True, **_CPU_FRIENDLY)
settings.register_profile("nightly", max_examples=200, **_CPU_FRIENDLY)
settings.load_profile(os.environ.get("HARNESS_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
