"""Interleaved throughput A/B: the old and the new environment timed on the same machine, round after round.

One long-lived worker per side (`python -m harness.upgrade.probe bench`) prepares each cell once; rounds then
alternate between the sides in an A B B A pattern, so a drift of the machine's speed (a neighbour, thermal state,
frequency) falls on both sides alike instead of on whichever ran second. The first round of each side and cell is
a warm-up and is dropped. The verdict is the suites' throughput test (Mann-Whitney U on per-step seconds plus a
minimum effect on the ratio of medians); what it could have seen is reported too: the smallest slowdown detectable
at `alpha` with 80 % power. Steps within a round share the machine's state of the moment, so a slowdown is only
flagged when the rounds agree too: a Wilcoxon signed-rank test on the per-round ratios of medians (rounds, not
steps, are the independent units) must also reject at `alpha`, and their median must reach the minimum effect.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError
from harness.upgrade.sides import Side
from harness.upgrade.venvs import PROJECT


@dataclass
class Samples:
    """Per-step seconds of one side and cell, kept per round."""

    rounds: list[list[float]] = field(default_factory=list)
    busy_cores: list[float] = field(default_factory=list)  # other processes' CPU use during each round

    @property
    def steps(self) -> list[float]:
        return [s for r in self.rounds for s in r]

    @property
    def round_medians(self) -> list[float]:
        return [statistics.median(r) for r in self.rounds if r]


class Worker:
    """A side's bench process: ask for a round of a cell, get its per-step seconds."""

    def __init__(self, side: Side, spec: dict[str, Any], log: IO[str]) -> None:
        self.side = side
        self.process = subprocess.Popen(
            [str(side.venv.python), "-m", "harness.upgrade.probe", "bench", json.dumps(spec)], cwd=PROJECT,
            env=side.environ(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        self._answer()  # {"ready": n} once every cell is prepared

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise HarnessError(f"the {self.side.name} side's throughput worker stopped (exit {code}); its log is "
                               "in the output folder (bench-<side>.log).")
        return json.loads(line)

    def round(self, cell: int) -> tuple[list[float], float | None]:
        """One timed round of a cell: its per-step seconds, and other processes' CPU use meanwhile (cores)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{cell}\n")
        self.process.stdin.flush()
        answer = self._answer()
        return list(answer["step_seconds"]), answer.get("busy_cores")

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.process.poll() is None:
            try:
                self.process.stdin.write("\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def order(round_index: int) -> tuple[int, int]:
    """A B, B A, A B, ...: side indices for one round, alternating so drift hits both sides equally."""
    return (0, 1) if round_index % 2 == 0 else (1, 0)


def interleaved(sides: Sequence[Side], configs: Sequence[dict[str, Any]], *, rounds: int, steps: int, warmup: int,
                threads: int, log_dir: Path,
                progress: Callable[[str], None] = lambda line: None) -> list[tuple[Samples, Samples]]:
    """Per cell, the (old, new) samples of `rounds` timed rounds each, after one dropped warm-up round; a
    `progress` line after each round."""
    began = time.perf_counter()
    spec = {"configs": list(configs), "steps": steps, "warmup": warmup, "threads": threads}
    logs = [open(log_dir / f"bench-{s.name}.log", "w", encoding="utf-8") for s in sides]
    workers: list[Worker] = []
    try:
        workers = [Worker(side, spec, log) for side, log in zip(sides, logs)]
        samples = [(Samples(), Samples()) for _ in configs]
        for r in range(rounds + 1):
            for cell in range(len(configs)):
                for index in order(r + cell):
                    seconds, busy = workers[index].round(cell)
                    if r > 0:  # round 0 warms both sides up
                        samples[cell][index].rounds.append(seconds)
                        if busy is not None:
                            samples[cell][index].busy_cores.append(busy)
            done = "warm-up round" if r == 0 else f"round {r} of {rounds}"
            progress(f"  {done} done, {len(configs)} cell(s) x both sides ({time.perf_counter() - began:.0f} s)")
        return samples
    finally:
        for worker in workers:
            worker.close()
        for log in logs:
            log.close()


def round_log_ratios(old: Samples, new: Samples) -> list[float]:
    """log(new / old) of the per-round medians, round by round: the two rounds of a pair ran back to back, so the
    machine's state of the moment divides out."""
    return [math.log(b / a) for a, b in zip(old.round_medians, new.round_medians)]


@dataclass(frozen=True)
class Paired:
    effect: float  # the slowdown the rounds say: exp(median per-round log ratio) - 1
    p_value: float  # two-sided exact Wilcoxon signed-rank test of the per-round log ratios against 0
    detectable: float  # smallest slowdown (fraction) this run detects at alpha with 80 % power
    rounds: int


def min_rounds(alpha: float) -> int:
    """The fewest rounds with which the two-sided exact signed-rank test can reject at `alpha`: its smallest p
    value, every ratio on one side, is 2 / 2**rounds (8 at alpha 0.01, 6 at 0.05)."""
    return max(2, math.ceil(1 + math.log2(1 / alpha) - 1e-9))


def paired_test(old: Samples, new: Samples, *, alpha: float, min_effect: float = 0.0,
                power: float = 0.8) -> Paired | None:
    """The rounds as the independent units: Wilcoxon signed-rank on per-round log ratios (one round disturbed by a
    neighbour moves a rank, not the verdict); None with fewer than min_rounds(alpha) rounds (it could not reject). `detectable`: from a robust
    spread of the ratios (1.4826 x MAD), the slowdown flagged with `power`, honouring the minimum effect (a true
    slowdown just at `min_effect` is measured below it half the time)."""
    from scipy import stats

    ratios = round_log_ratios(old, new)
    n = len(ratios)
    if n < min_rounds(alpha):
        return None
    centre = statistics.median(ratios)
    if all(r == 0 for r in ratios):
        return Paired(0.0, 1.0, 0.0, n)
    p = float(stats.wilcoxon(ratios, method="exact").pvalue) if len(set(ratios)) == n else \
        float(stats.wilcoxon(ratios).pvalue)
    spread = 1.4826 * statistics.median(abs(r - centre) for r in ratios) or statistics.stdev(ratios)
    se = spread / math.sqrt(n)
    reject, beyond = float(stats.t.ppf(1 - alpha / 2, n - 1)), float(stats.t.ppf(power, n - 1))
    # the median of the ratios, which must reach min_effect, varies sqrt(pi / 2) times more than their mean
    needed = max((reject + beyond) * se, math.log1p(min_effect) + beyond * math.sqrt(math.pi / 2) * se)
    return Paired(math.expm1(centre), p, math.expm1(needed), n)
