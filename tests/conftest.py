"""The harness's own tests: offline, every cache in a temporary folder, real GLUE data when it is beside us."""

import os
import tempfile
from pathlib import Path

# Set before anything imports huggingface_hub, which reads these once at import time.
_SCRATCH = Path(tempfile.mkdtemp(prefix="harness-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_SCRATCH / "hf")
os.environ["HF_DATASETS_CACHE"] = str(_SCRATCH / "hf" / "datasets")
os.environ["HARNESS_CACHE"] = str(_SCRATCH / "harness")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def real_glue_dir() -> Path | None:
    candidate = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue")
    return candidate if (candidate / "MRPC").is_dir() else None


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    found = real_glue_dir()
    if found is None:
        pytest.skip("real GLUE data not found: set GLUE_DIR or place it at ../shared/glue")
    return found
