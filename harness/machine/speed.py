"""How fast and how busy this machine is while something is timed: the witness every speed verdict needs.

A fixed single-threaded numpy workload (independent of torch and transformers) measures the machine's own speed;
`MachineLoad` measures how much CPU other processes took. A timing is judged against another only when both were
taken with the machine in a comparable state (harness.judging.comparability.machine_drift).

The device's peak FLOP/s, the denominator of MFU (harness.machine.flops): a GPU's from its datasheet, a CPU's measured
once per CPU model, thread count and dtype by a short torch.matmul benchmark and cached under the harness cache.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.base import jsonfile

_REFERENCE: Any = None


def reference_seconds(repeats: int = 5) -> float:
    """Median seconds of a fixed single-threaded numpy workload (~3 ms on an idle 2-core EPYC): machine speed."""
    global _REFERENCE
    import numpy as np
    from threadpoolctl import threadpool_limits

    if _REFERENCE is None:
        _REFERENCE = np.random.default_rng(0).random((160, 160), dtype=np.float32)
    times = []
    with threadpool_limits(1):
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(40):
                _REFERENCE @ _REFERENCE
            times.append(time.perf_counter() - started)
    return statistics.median(times)


class MachineLoad:
    """CPU time used by *other* processes between start() and stop(), in cores (Linux /proc; None elsewhere)."""

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None
        self.cores: float | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # all but idle, iowait
            mine = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            own = int(mine[11]) + int(mine[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            return None
        return busy / os.sysconf("SC_CLK_TCK"), own / os.sysconf("SC_CLK_TCK"), time.monotonic()

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None or end[2] <= self._start[2]:
            return None
        others = (end[0] - self._start[0]) - (end[1] - self._start[1])
        self.cores = round(max(others, 0.0) / (end[2] - self._start[2]), 3)
        return self.cores




class MachineWitness:
    """Machine speed before and after a timed stretch, and other processes' CPU use during it."""

    def __init__(self) -> None:
        self.load = MachineLoad()
        self.reference: list[float] = []

    def __enter__(self) -> MachineWitness:
        self.reference.append(reference_seconds())
        self.load.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.load.stop()
        self.reference.append(reference_seconds())

    def result(self) -> dict[str, Any]:
        return {"reference_seconds": [round(s, 6) for s in self.reference], "busy_cores": self.load.cores}


# ------------------------------------------------------------------------------------------------ peak FLOP/s

PEAK_CACHE_VERSION = 1
MATMUL_SIZE = 1024  # square fp32 operands of 4 MiB: past the caches; ~25 ms per product on one EPYC core
_TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def peak_cache_path(cache_root: Path) -> Path:
    return Path(cache_root) / "machine" / "matmul-peak.json"


def peak_key(cpu_model: str, threads: int, dtype: str) -> str:
    return f"{cpu_model}|{threads}t|{dtype}"


def measure_matmul_flops(dtype: str, threads: int, *, size: int = MATMUL_SIZE, rounds: int = 5,
                         round_seconds: float = 0.05) -> float:
    """Best FLOP/s of `rounds` rounds of size x size torch.matmul at `threads` CPU threads (restored after)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=generator).to(getattr(torch, _TORCH_DTYPES[dtype]))
                for _ in range(2))
        torch.matmul(a, b)  # warm-up: thread pool start, kernel selection
        best = 0.0
        for _ in range(rounds):
            products, started = 0, time.perf_counter()
            while True:
                torch.matmul(a, b)
                products += 1
                elapsed = time.perf_counter() - started
                if elapsed >= round_seconds:
                    break
            best = max(best, products * 2 * size ** 3 / elapsed)
        return best
    finally:
        torch.set_num_threads(previous)


def cpu_peak(cpu_model: str, threads: int, dtype: str, *, cache_root: Path) -> dict[str, Any]:
    """The record's peak entry for a CPU, measured once and cached. A measurement taken while other processes kept
    the CPU busy reads low, so it is retaken until one is taken on a quiet machine, keeping the best (a missing,
    unreadable or older cache file is re-measured, never an error)."""
    path, key = peak_cache_path(cache_root), peak_key(cpu_model, threads, dtype)
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        entries = dict(cached["peaks"]) if cached.get("schema_version") == PEAK_CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        entries = {}
    entry = entries.get(key)
    if entry is None or not _quiet(entry.get("busy_cores")):
        load = MachineLoad()
        load.start()
        measured = measure_matmul_flops(dtype, threads)
        busy = load.stop()
        if entry is None or measured > entry["flops_per_second"]:
            entry = {"flops_per_second": measured, "busy_cores": busy, "matrix_size": MATMUL_SIZE,
                     "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        elif _quiet(busy):
            entry = {**entry, "busy_cores": busy}  # a quiet retake that found no more: the cached best stands
        entries[key] = entry
        try:
            jsonfile.write(path, {"schema_version": PEAK_CACHE_VERSION, "peaks": entries})
        except OSError:
            pass  # an unwritable cache costs a re-measurement next time, not the run
    return {"source": "measured", "device": cpu_model, "threads": threads, "dtype": dtype,
            "flops_per_second": entry["flops_per_second"], "measured_at": entry.get("measured_at"),
            "busy_cores": entry.get("busy_cores"),
            "reference": f"best {entry.get('matrix_size', MATMUL_SIZE)}^2 torch.matmul rate, cached in {path.name}",
            "note": None}


QUIET_CORES = 0.25  # other processes' CPU use, in cores, under which a peak measurement is taken as final


def _quiet(busy_cores: float | None) -> bool:
    return busy_cores is not None and busy_cores <= QUIET_CORES


def tf32_enabled() -> bool:
    """Whether fp32 matrix products on CUDA may use TF32 tensor cores (torch's flags as they are now)."""
    import torch

    precision = getattr(torch.backends.cuda.matmul, "fp32_precision", "none")  # torch >= 2.9; "none": unset
    if precision != "none":
        return precision == "tf32"
    try:  # the legacy flags; torch raises when both APIs were used to set them
        return bool(torch.backends.cuda.matmul.allow_tf32) or torch.get_float32_matmul_precision() != "highest"
    except RuntimeError:
        return False


def device_peak(device: str, dtype: str, *, cpu_model: str, cache_root: Path) -> dict[str, Any]:
    """Peak FLOP/s of one device for products in `dtype`: the GPU's datasheet, or this CPU measured at the
    current thread count."""
    import torch

    from harness.machine import flops

    if device == "cuda":
        return flops.gpu_peak_info(torch.cuda.get_device_name(torch.cuda.current_device()), dtype)
    return cpu_peak(cpu_model, torch.get_num_threads(), "fp32" if dtype == "tf32" else dtype, cache_root=cache_root)

