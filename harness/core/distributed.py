"""Who this process is among several: torchrun ranks, pytest-xdist workers, and the GPU each worker may use.

Pure functions of the environment (passed in, `os.environ` by default); no torch import, so the pytest plugin and
the CLI can ask before torch initialises CUDA (CUDA_VISIBLE_DEVICES is read once, when CUDA starts).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence

from harness.errors import HarnessError


def world_size(environ: Mapping[str, str] = os.environ) -> int:
    """Processes in this torchrun job (WORLD_SIZE); 1 outside torchrun."""
    return _int(environ, "WORLD_SIZE", 1)


def rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's global rank under torchrun (RANK); 0 outside torchrun."""
    return _int(environ, "RANK", 0)


def is_main_process(environ: Mapping[str, str] = os.environ) -> bool:
    """Rank 0: the one process of a torchrun job that writes records, tables and baselines."""
    return rank(environ) == 0


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise HarnessError(f"{name}={text!r} is not a whole number; torchrun sets it. Unset it, or launch with "
                           "`torchrun --nproc_per_node N -m harness.cli run ...`.")
    return int(text)


def worker_index(worker_id: str) -> int:
    """The number of a pytest-xdist worker id: "gw0" -> 0, "gw12" -> 12."""
    found = re.fullmatch(r"gw(\d+)", worker_id)
    if found is None:
        raise HarnessError(f"pytest-xdist worker id {worker_id!r} is not of the form gw<N>; is PYTEST_XDIST_WORKER "
                           "set by something other than pytest-xdist?")
    return int(found.group(1))


def visible_gpus(environ: Mapping[str, str] = os.environ, count: Callable[[], int] | None = None) -> list[str]:
    """The GPUs this process may hand out: CUDA_VISIBLE_DEVICES's entries when it is set (empty, or -1: none),
    else 0 .. count()-1 (count: torch.cuda.device_count, imported only then)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [e.strip() for e in environ["CUDA_VISIBLE_DEVICES"].split(",") if e.strip()]
        return [] if entries[:1] == ["-1"] else entries
    if count is None:
        count = _torch_gpu_count
    return [str(i) for i in range(count())]


def _torch_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def worker_gpu(worker_id: str, gpus: Sequence[str]) -> str | None:
    """The one GPU worker `worker_id` uses: round robin over `gpus` (gw0 -> first, gw1 -> second, ...; more
    workers than GPUs share them). One each, because a Trainer that sees several GPUs in one process wraps the model
    in DataParallel. None when there is no GPU (leave CUDA_VISIBLE_DEVICES alone)."""
    if not gpus:
        return None
    return gpus[worker_index(worker_id) % len(gpus)]
