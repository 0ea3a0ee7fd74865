"""One side's untimed work in an upgrade check, begun when the check starts and done in the background while the
stages judge what has arrived.

Per side, two lines of work run at once: the side's pytest suite (a process of its own: pytest needs a fresh
interpreter) and everything else in the side's worker (harness.upgrade.worker), in the order the stages need it:
API signatures and the course walkthrough, the training runs (the tier's cells and yours), the noise-floor runs,
the throughput cells' preparation. Each result comes from the side's cache (harness.upgrade.cache) where an earlier
check made it, and is kept there when made. With both sides to do, that is four processes on two cores; with the
old side cached, the new side's two lines have a core each. Throughput rounds start only once all of it is done.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.upgrade import processes
from harness.upgrade.cache import Cache, environment
from harness.upgrade.processes import say
from harness.upgrade.sides import Side
from harness.upgrade.worker import Worker


@dataclass(frozen=True)
class Plan:
    """What the stages will ask of each side (the same for both)."""

    results: tuple[str, ...]  # of RESULTS, in the order the worker makes them
    configs: tuple[Any, ...] = ()  # RunConfigs trained on both sides (the tier's cells and yours)
    bench: tuple[Any, ...] = ()  # RunConfigs timed by the throughput rounds
    threads: int = 1
    steps: int = 20
    warmup: int = 5
    suite_marker: str = "contract or training"
    config_file: Path | None = None  # your fine-tuning, for the suite's --harness-config


RESULTS = ("signatures", "walkthrough", "suite", "runs", "replicates", "bench")
WHAT = {"signatures": "API signatures", "walkthrough": "the course walkthrough", "suite": "the suites",
        "runs": "the training runs", "replicates": "the noise-floor runs", "bench": "the throughput cells"}


@dataclass(frozen=True)
class Found:
    """One result of one side: its value, the seconds it took, and when it was made if it came from the cache."""

    value: Any
    seconds: float
    made: str | None = None

    def describe(self) -> str:
        return f"cache ({self.made})" if self.made else f"{self.seconds:.0f} s"


def replicate_config(config: Any) -> Any:
    """The noise-floor run of a cell: only the optimizer steps the trajectory compares (one short epoch of
    trajectory_steps x batch x accumulation examples), evaluated on few examples."""
    samples = config.trajectory_steps * (config.train_batch_size or 8) * config.gradient_accumulation_steps
    if config.max_train_samples:
        samples = min(samples, config.max_train_samples)
    return dataclasses.replace(config, epochs=1.0, max_train_samples=samples, evals_per_epoch=1,
                               max_eval_samples=min(config.max_eval_samples or 64, 64))


@dataclass
class SideWork:
    side: Side
    plan: Plan
    out: Path
    cache: Cache
    spare_core: bool = False  # the other side has nothing to train (cached): this side trains on two workers
    results: dict[str, Future] = field(default_factory=dict)
    worker: Worker | None = None

    def start(self) -> None:
        self.results = {name: Future() for name in self.plan.results}
        lines = [[n for n in self.plan.results if n != "suite"], [n for n in self.plan.results if n == "suite"]]
        for names in filter(None, lines):
            threading.Thread(target=self._work, args=(names,), daemon=True,
                             name=f"{self.side.name}-{names[0]}").start()

    def has_cached(self, name: str) -> bool:
        """Whether result `name` will come from the cache (known before the work starts)."""
        return name in self.plan.results and self.cache.find(name, self._settings(name)) is not None

    def get(self, name: str) -> Found:
        """The result (waiting for it); its error if it could not be made."""
        return self.results[name].result()

    def wait(self) -> None:
        """Until every result is made or failed: nothing of this side runs after it."""
        for future in self.results.values():
            future.exception()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    # ------------------------------------------------------------------------------------------- the work

    def _work(self, names: Sequence[str]) -> None:
        for name in names:
            future = self.results[name]
            try:
                future.set_result(self._make(name))
            except BaseException as err:  # the stage that asks says it; the rest of the line still runs
                future.set_exception(err if isinstance(err, Exception) else RuntimeError("interrupted"))

    def _make(self, name: str) -> Found:
        settings = self._settings(name)
        if name != "bench" and (hit := self.cache.find(name, settings)) is not None:
            say(f"  {self.side.name}: {WHAT[name]} from the cache (made {hit.made})")
            return Found(self._from_cache(name, hit.value, hit.folder), hit.seconds, hit.made)
        began = time.perf_counter()
        value, files, keep = getattr(self, f"_{name}")(settings)
        seconds = time.perf_counter() - began
        say(f"  {self.side.name}: {WHAT[name]} done ({seconds:.0f} s)")
        if keep:
            self.cache.keep(name, settings, self._to_cache(name, value), seconds, files)
        return Found(value, seconds)

    def _settings(self, name: str) -> dict[str, Any]:
        """What a result depends on beyond the side, the harness source and the machine (the cache key)."""
        common = {"environment": environment()}
        if name == "suite":
            yours = self.plan.config_file.read_text(encoding="utf-8") if self.plan.config_file else None
            return {**common, "marker": self.plan.suite_marker, "yours": yours}
        if name == "runs":
            return {**common, "configs": [dataclasses.asdict(c) for c in self.plan.configs],
                    "threads": self.plan.threads}
        if name == "replicates":  # the first cell that trained: known once the runs are
            first = self._first_trained()
            return {**common, "config": dataclasses.asdict(first) if first else None, "threads": self.plan.threads}
        return common

    def _ask(self, op: str, *, worker: Worker | None = None, **arguments: Any) -> Any:
        """One request to the side's worker (started at the first), or to `worker`; its cells said as they start."""
        if worker is None:
            if self.worker is None:
                self.worker = Worker(self.side, self.out / f"{self.side.name}-worker.log")
                self.worker.ask("threads", threads=self.plan.threads)
            worker = self.worker
        which = "" if worker is self.worker else "second worker, "
        began = time.perf_counter()

        def progress(line: str) -> None:
            say(f"  {self.side.name}: cell {line} ({which}at {time.perf_counter() - began:.0f} s)")

        return worker.ask(op, progress=progress, **arguments)

    def _signatures(self, settings: dict) -> tuple[Any, None, bool]:
        return self._ask("signatures"), None, True

    def _walkthrough(self, settings: dict) -> tuple[Any, None, bool]:
        return self._ask("walkthrough"), None, True

    def _suite(self, settings: dict) -> tuple[Any, None, bool]:
        from harness.invariants import defects
        from harness.upgrade import replay

        name = self.side.name
        junit, found = self.out / f"{name}-suites.xml", self.out / f"{name}-defects.jsonl"
        found.unlink(missing_ok=True)
        yours = ["--harness-config", str(self.plan.config_file)] if self.plan.config_file else []
        processes.run_in(self.side, replay.suite_args(self.plan.suite_marker, f"--junitxml={junit}", *yours,
                                                      verbose=True),
                         self.out / f"{name}-suites.log", **replay.SUITE_ENV, **{defects.OUTCOMES_ENV: str(found)})
        if not junit.is_file():  # the session itself failed: said, never kept
            failed = replay.SuiteOutcome("(pytest session)", "", "failed", f"no JUnit report; see {name}-suites.log")
            return {"outcomes": [failed], "defects": None}, None, False
        reproduced = defects.read_outcomes(found) if found.is_file() else None
        return {"outcomes": replay.read_junit(junit), "defects": reproduced}, None, True

    def _runs(self, settings: dict) -> tuple[Any, dict[str, Path], bool]:
        """The tier's cells and yours; with a spare core, every other cell in a second worker at the same time
        (each cell is seeded on its own: where it runs changes none of its numbers)."""
        folder = self.out / f"{self.side.name}-runs"
        configs = list(self.plan.configs)
        if not self.spare_core or len(configs) < 2:
            self._train(configs, folder)
        else:
            helper = Worker(self.side, self.out / f"{self.side.name}-worker-2.log")
            try:
                helper.ask("threads", threads=self.plan.threads)
                second = Future()
                threading.Thread(target=lambda: _settle(second, lambda: self._train(configs[1::2], folder, helper)),
                                 daemon=True, name=f"{self.side.name}-runs-2").start()
                self._train(configs[0::2], folder)
                second.result()
            finally:
                helper.close()
        records = _records(folder)
        return records, {"records": folder}, bool(records) and all(r.ok for r in records)

    def _replicates(self, settings: dict) -> tuple[Any, dict[str, Path], bool]:
        """The same short run twice: what this environment itself varies by (no pair if either fails)."""
        first = self._first_trained()
        if first is None:
            return [], {}, False
        short = replicate_config(first)
        folders = {copy: self.out / f"{self.side.name}-replicate-{copy}" for copy in ("a", "b")}
        twins = [r for folder in folders.values() for r in self._train([short], folder) if r.ok]
        pair = [tuple(twins)] if len(twins) == 2 else []
        return pair, folders, bool(pair)

    def _bench(self, settings: dict) -> tuple[Any, None, bool]:
        return self._ask("bench", configs=[dataclasses.asdict(c) for c in self.plan.bench], steps=self.plan.steps,
                         warmup=self.plan.warmup), None, False

    def _train(self, configs: Sequence[Any], folder: Path, worker: Worker | None = None) -> list:
        """Train `configs` in the side's worker (or `worker`), records written under `folder`; its records."""
        folder.mkdir(parents=True, exist_ok=True)
        self._ask("run", worker=worker, configs=[dataclasses.asdict(c) for c in configs], output=str(folder))
        return _records(folder)

    def _first_trained(self) -> Any:
        """The config of the first cell (in cell order) that trained on this side, or None."""
        records = self.get("runs").value
        first = next((r for r in sorted(records, key=lambda r: r.cell) if r.ok), None)
        return None if first is None else next(c for c in self.plan.configs if c.cell_id == first.cell)

    # -------------------------------------------------------------------------------------- cache forms

    @staticmethod
    def _to_cache(name: str, value: Any) -> Any:
        if name == "suite":
            return {"outcomes": [dataclasses.asdict(o) for o in value["outcomes"]],
                    "defects": None if value["defects"] is None else
                    {k: sorted(v) for k, v in value["defects"].items()}}
        if name in ("runs", "replicates"):
            return None  # the records are the files kept beside
        return value

    @staticmethod
    def _from_cache(name: str, value: Any, folder: Path) -> Any:
        from harness.upgrade import replay

        if name == "suite":
            return {"outcomes": [replay.SuiteOutcome(**o) for o in value["outcomes"]],
                    "defects": None if value["defects"] is None else
                    {k: set(v) for k, v in value["defects"].items()}}
        if name == "runs":
            return _records(folder / "records")
        if name == "replicates":
            return [tuple(r for copy in ("a", "b") for r in _records(folder / copy))]
        return value


def _settle(future: Future, work: Any) -> None:
    try:
        future.set_result(work())
    except BaseException as err:
        future.set_exception(err if isinstance(err, Exception) else RuntimeError("interrupted"))


def _records(folder: Path) -> list:
    from harness.store import recordsets

    return recordsets.load([folder]).records if folder.is_dir() and any(folder.iterdir()) else []
