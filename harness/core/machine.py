"""How fast and how busy this machine is while something is timed: the witness every speed verdict needs.

A fixed single-threaded numpy workload (independent of torch and transformers) measures the machine's own speed;
`MachineLoad` measures how much CPU other processes took. A timing is judged against another only when both were
taken with the machine in a comparable state (harness.judging.comparability.machine_drift).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

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
