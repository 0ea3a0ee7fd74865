"""`harness upgrade-check`: the old and the new environment on one machine, stage by stage, one report.

Stages, in order (each judged before the next starts, so `fail_fast` stops at the first regression):
  preflight   API signatures diffed, the course walkthrough's deprecation warnings on each side, a user's script
              checked against the new API (seconds);
  contracts   `pytest suites/ -m "contract or training"` on both sides, outcome by outcome; then the known defects
              that reproduced on each side (defects): one new on the new side is a regression where your settings
              trigger it (or where no settings were given), a warning where they do not; one gone is fixed;
  trajectory  the tier's cells and yours (a config file) on both sides with the same seeds and data, first K
              optimizer steps compared;
  quality     the same runs judged as `harness compare` judges them (paired per example, per seed);
  throughput  interleaved A/B rounds in one worker pair (abtest.py).
The two sides run side by side (one thread each) wherever timing does not matter; throughput runs alone.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.base.registry import Registry
from harness.errors import HarnessError
from harness.upgrade.sides import Side
from harness.upgrade.venvs import PROJECT

OK, CHANGED, REGRESSED, ERROR = "ok", "changed", "regressed", "error"
FAILING = (REGRESSED, ERROR)
SUITE_MARKER = "contract or training"
REPLICATE_SAMPLES = 2048  # the noise-floor runs: one short epoch (64 steps at batch 32), twice per side

T = TypeVar("T")


@dataclass(frozen=True)
class Stage:
    """One stage of the check: what it tells, how it makes its report sections from a `StageRun`, and the figures
    (HTML plots) of a section it made. Stages run in registration order."""

    name: str
    describe: str  # one line, for --help
    make: Callable[[StageRun], Section | list[Section]]
    figures: Callable[[Section], list[str]] = lambda section: []


@dataclass
class StageRun:
    """What a stage works from: both sides, the options, the output folder, and the tier's runs (made once, by the
    first stage that asks)."""

    sides: Sequence[Side]
    opts: CheckOptions
    out: Path
    progress: Callable[[str], None] = print
    _runs: list[tuple[list, list]] | None = None

    def tier_runs(self) -> list[tuple[list, list]]:
        if self._runs is None:
            self.progress(f"[runs] tier {self.opts.tier} on both sides ...")
            self._runs = tier_runs(self.sides, self.opts, self.out)
        return self._runs


STAGES: Registry[Stage] = Registry("stage", (
    Stage("preflight", "API signatures, deprecation warnings of the course walkthrough, your script's keywords",
          lambda run: preflight(run.sides, run.opts, run.out)),
    Stage("contracts", "pytest suites/ -m 'contract or training' on both sides, and the known defects each reproduces",
          lambda run: contracts(run.sides, run.opts, run.out)),
    Stage("trajectory", "the first optimizer steps of the tier's cells and yours, same seed and data",
          lambda run: trajectory_section(run.tier_runs()), lambda section: _trajectory_figures(section)),
    Stage("quality", "the same runs judged as `harness compare` judges them",
          lambda run: quality_section(run.tier_runs(), run.opts), lambda section: _quality_figures(section)),
    Stage("throughput", "interleaved A/B rounds in one worker pair",
          lambda run: throughput(run.sides, run.opts, run.out), lambda section: _throughput_figures(section)),
))


@dataclass(frozen=True)
class CheckOptions:
    tier: str = "smoke"
    models: tuple[str, ...] = ()  # narrow the tier (empty: the tier's own)
    tasks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    epochs: float | None = None  # shrink the tier's training (None: the tier's)
    max_train_samples: int | None = None
    stages: tuple[str, ...] = field(default_factory=lambda: tuple(STAGES))  # all, in order
    fail_fast: bool = False
    script: Path | None = None
    alpha: float = 0.01
    rounds: int = 10  # timed A/B rounds per side and cell
    steps: int = 20  # optimizer steps per round
    warmup: int = 5  # steps dropped at the start of each round
    min_slowdown: float = 0.05  # smallest throughput change flagged
    threads: int = 1
    finetune: Any = None  # harness.finetune.FineTune: your fine-tuning, trained next to the tier's cells
    config_file: Path | None = None  # the same as a TOML file, for the sides' pytest (--harness-config)
    new_refusals: tuple[str, ...] = ()  # why the new side cannot train your fine-tuning (preflight regresses)


@dataclass
class Section:
    stage: str
    title: str
    status: str = OK
    summary: str = ""
    columns: tuple[str, ...] = ()
    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)  # data for the HTML plots (trajectories, step times)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    sides: list[dict[str, Any]]  # per side: name, spec, title, versions, patch, known defects
    options: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0

    @property
    def regressed(self) -> bool:
        return any(s.status in FAILING for s in self.sections)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "upgrade check", "version": 1, "regressed": self.regressed, "sides": self.sides,
                "options": self.options, "started": self.started, "seconds": round(self.seconds, 1),
                "sections": [s.to_dict() for s in self.sections]}


# ---------------------------------------------------------------------------------------------- processes

_STOPPING = threading.Event()  # set on Ctrl-C: no side starts another process
_LIVE: set[subprocess.Popen] = set()  # the sides' processes running now
_LIVE_LOCK = threading.Lock()


def both(sides: Sequence[Side], work: Callable[[Side], T]) -> list[T]:
    """`work` for each side at once (two processes on two cores), results in side order. An interrupt stops both
    sides at once: every running process is terminated and none is started after it."""
    pool = ThreadPoolExecutor(max_workers=len(sides))
    try:
        return list(pool.map(work, sides))
    except BaseException:
        _STOPPING.set()
        with _LIVE_LOCK:
            for process in _LIVE:
                process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_PROGRESS_LOCK = threading.Lock()
_progress: Callable[[str], None] = lambda line: None  # where the sides' progress lines go (run_check sets it)
_CELL_LINE = re.compile(r"^\[\d+/\d+\] \S+$")  # `harness run`: one line as each cell starts
_PYTEST_LINE = re.compile(r"\[\s*(\d+)%\]$")  # `pytest -v`: the percentage at the end of each test's line
PYTEST_STEP = 25  # the suites' progress is said every this many percent


def say(line: str) -> None:
    """A progress line from either side's thread, whole."""
    with _PROGRESS_LOCK:
        _progress(line)


def run_in(side: Side, args: Sequence[str], log: Path, *, what: str = "", timeout: int = 3600,
           **env: str) -> subprocess.CompletedProcess:
    """`python ARGS` in the side's venv (this checkout, the side's patch, `env` added), output kept in `log`.
    Progress as it runs: each cell `harness run` starts, pytest's percentage, and `what` when it ends."""
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        process = subprocess.Popen([str(side.venv.python), *args], cwd=PROJECT, env=side.environ(**env),
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        with _LIVE_LOCK:
            _LIVE.add(process)
        deadline = threading.Timer(timeout, process.kill)
        deadline.start()
        lines: list[str] = []
        shown = -PYTEST_STEP  # the last pytest percentage said
        try:
            with process.stdout:  # type: ignore[union-attr]
                for line in process.stdout:  # type: ignore[union-attr]
                    lines.append(line)
                    shown = _echo(side, line.rstrip(), time.perf_counter() - began, shown)
            process.wait()
        finally:
            deadline.cancel()
            with _LIVE_LOCK:
                _LIVE.discard(process)
        errors.seek(0)
        stderr = errors.read()
    if process.returncode == -9 and time.perf_counter() - began >= timeout:
        stderr += f"\nharness: stopped after {timeout} s"
    stdout = "".join(lines)
    log.write_text(f"$ python {' '.join(args)}\n{stdout}\n{stderr}", encoding="utf-8")
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    if what:
        outcome = "done" if process.returncode == 0 else f"exit {process.returncode}, see {log.name}"
        say(f"  {side.name}: {what} {outcome} ({time.perf_counter() - began:.0f} s)")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _echo(side: Side, line: str, elapsed: float, shown: int) -> int:
    """Say a progress line of the side's process, if it is one; returns the pytest percentage said last (every
    PYTEST_STEP points, not every test)."""
    if _CELL_LINE.match(line):
        say(f"  {side.name}: cell {line} (at {elapsed:.0f} s)")
    elif (found := _PYTEST_LINE.search(line)) is not None:
        percent = int(found.group(1))
        if percent >= shown + PYTEST_STEP or (percent == 100 and shown < 100):
            say(f"  {side.name}: suites {percent} % (at {elapsed:.0f} s)")
            return percent
    return shown


def _json_of(done: subprocess.CompletedProcess, what: str, side: Side) -> Any:
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"{what} failed on the {side.name} side: {tail[0]} (see {side.name}-*.log)")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------- stages

def preflight(sides: Sequence[Side], opts: CheckOptions, out: Path) -> Section:
    from harness.upgrade import api

    def probe(side: Side) -> tuple[Any, Any]:
        sig = run_in(side, ["-m", "harness.upgrade.probe", "signatures"], out / f"{side.name}-signatures.log",
                     what="API signatures")
        walk = run_in(side, ["-m", "harness.upgrade.probe", "walkthrough"], out / f"{side.name}-walkthrough.log",
                      what="the course walkthrough")
        return _json_of(sig, "reading the API signatures", side), _json_of(walk, "the course walkthrough", side)

    (old_sig, old_walk), (new_sig, new_walk) = both(sides, probe)
    section = Section("preflight", "Preflight: API, deprecations, the course walkthrough",
                      columns=("what", "where", "change"))
    changes = api.diff(old_sig, new_sig)
    section.rows += [{"what": what, "where": where, "change": text} for what, where, text in api.grouped(changes)]
    warned = api.warning_changes(old_walk["warnings"], new_walk["warnings"])
    for key, label in (("gone", "deprecation gone on the new side"), ("new", "new deprecation"),
                       ("both", "deprecation on both sides")):
        for w in warned[key]:
            section.rows.append({"what": label, "where": w["origin"], "change": f"{w['category']}: {w['message']}"})
    problems = []
    if new_walk["error"] and not old_walk["error"]:
        problems.append(f"the course walkthrough no longer runs: {new_walk['error']}")
        section.rows.append({"what": "walkthrough FAILS on the new side", "where": "-", "change": new_walk["error"]})
    for why in opts.new_refusals:
        section.rows.append({"what": "your fine-tuning FAILS on the new side", "where": "-", "change": why})
    if opts.new_refusals:
        problems.append(f"your fine-tuning cannot be trained on the new side ({opts.new_refusals[0]})")
    uses = api.script_uses(opts.script, new_sig) if opts.script else []
    for use in uses:
        section.rows.append({"what": "your script breaks", "where": use.describe(),
                             "change": f"{use.call} no longer accepts {use.keyword}"})
    if uses:
        problems.append(f"{len(uses)} keyword argument(s) in {opts.script} that the new version does not accept")
    breaking = sum(c.breaking for c in changes)
    section.summary = "; ".join(problems) or (
        f"{len(changes)} API change(s) ({breaking} breaking), {len(warned['new'])} new and "
        f"{len(warned['gone'])} resolved deprecation(s); the walkthrough runs on both sides"
        + (f"; {opts.script} passes nothing the new version refuses" if opts.script else ""))
    section.status = REGRESSED if problems else CHANGED if changes or warned["new"] else OK
    if old_walk["error"]:
        section.notes.append(f"the walkthrough fails on the old side too: {old_walk['error']}")
    return section


def contracts(sides: Sequence[Side], opts: CheckOptions, out: Path) -> list[Section]:
    from harness.invariants import defects
    from harness.upgrade import replay

    def suite(side: Side) -> tuple[list[replay.SuiteOutcome], dict[str, set[str]] | None]:
        junit, found = out / f"{side.name}-suites.xml", out / f"{side.name}-defects.jsonl"
        found.unlink(missing_ok=True)
        yours = ["--harness-config", str(opts.config_file)] if opts.config_file else []
        run_in(side, replay.suite_args(SUITE_MARKER, f"--junitxml={junit}", *yours, verbose=True),
               out / f"{side.name}-suites.log", what="the suites", **replay.SUITE_ENV,
               **{defects.OUTCOMES_ENV: str(found)})
        if not junit.is_file():
            return [replay.SuiteOutcome("(pytest session)", "", "failed", f"no JUnit report; see {side.name}-suites.log")], None
        return replay.read_junit(junit), (defects.read_outcomes(found) if found.is_file() else None)

    (old, old_defects), (new, new_defects) = both(sides, suite)
    yours = opts.finetune
    configs, stated = (tuple(yours.configs), yours.training_arguments) if yours is not None else ((), None)
    return [contracts_section(old, new), defects_section(old_defects, new_defects, configs,
                                                         [s.transformers for s in sides], stated)]


def defects_section(old: dict[str, set[str]] | None, new: dict[str, set[str]] | None, configs: Sequence[Any],
                    versions: Sequence[str] = ("?", "?"), stated: Mapping[str, Any] | None = None) -> Section:
    """The known defects that reproduced on each side (id -> invariants), diffed: a defect new on the new side is a
    regression when your fine-tuning (`configs`) triggers it or none was given, a warning when it does not; one
    gone from the new side is fixed. A side whose suite reported nothing cannot be judged (error). `stated`: the
    TrainingArguments your fine-tuning was written with (saving checkpoints makes a resume defect yours)."""
    from harness.invariants.defects import by_id

    section = Section("defects", "Known defects reproduced on each side (the training suite's own cases)",
                      columns=("defect", "old", "new", "verdict", "when", "your cells", "summary", "workaround"))
    if old is None or new is None:
        missing = " and ".join(n for n, d in (("old", old), ("new", new)) if d is None)
        section.status, section.summary = ERROR, (f"could not tell which known defects reproduce: the {missing} "
                                                  "side's training suite reported none (see <side>-suites.log)")
        return section
    new_ids, gone_ids = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    affecting = []
    for defect_id in sorted(old.keys() | new.keys()):
        defect = by_id(defect_id)
        hit = defect.affects(configs, stated)
        if defect_id in new_ids:
            verdict = ("REGRESSED: new known defect" + (", affects your fine-tuning" if hit else
                                                        " (no fine-tuning given: assumed to affect you)")
                       if hit or not configs else "warning: new known defect, not triggered by your settings")
            if hit or not configs:
                affecting.append(defect_id)
        elif defect_id in gone_ids:
            verdict = "fixed"
        else:
            verdict = "on both sides" + (" (affects your fine-tuning)" if hit else "")
        section.rows.append({
            "defect": f"[{defect_id}]({defect.link})", "old": _reproduced(old.get(defect_id)),
            "new": _reproduced(new.get(defect_id)), "verdict": verdict, "when": defect.when,
            "your cells": ", ".join(c.cell_id for c in hit) if configs else "(none given)",
            "summary": defect.summary, "workaround": defect.workaround or "-"})
    warned = [i for i in new_ids if i not in affecting]
    parts = [f"{len(new_ids)} new on transformers {versions[1]}" + (f" ({', '.join(new_ids)})" if new_ids else ""),
             f"{len(gone_ids)} fixed" + (f" ({', '.join(gone_ids)})" if gone_ids else ""),
             f"{len(old.keys() & new.keys())} on both sides"]
    if affecting:
        whom = "affects your fine-tuning" if configs else "assumed to affect you (no fine-tuning given)"
        parts.insert(0, ", ".join(f"{i} ({by_id(i).when})" for i in affecting) + f": {whom}")
    if warned:
        parts.append(f"not triggered by your settings: {', '.join(warned)}")
    section.summary = "; ".join(parts)
    section.status = REGRESSED if affecting else CHANGED if section.rows and (new_ids or gone_ids) else OK
    section.notes.append("a defect reproduces when the training suite's case for it breaks the invariant it "
                         "breaks (harness/invariants/defects.py); 'when' is what in a fine-tune's settings triggers it"
                         + ("" if configs else "; no fine-tuning of yours was given (--config, --script, "
                                               "harness.toml or [tool.harness]), so every new defect counts"))
    return section


def _reproduced(invariants: set[str] | None) -> str:
    return "reproduced (" + ", ".join(sorted(invariants)) + ")" if invariants else "-"


def contracts_section(old: Sequence[Any], new: Sequence[Any]) -> Section:
    """Outcome by outcome (replay.SuiteOutcome lists of each side): newly failing tests regress, fixed ones are changes."""
    from harness.upgrade import replay

    section = Section("contracts", "Contracts and training invariants (pytest suites/ -m \"contract or training\")",
                      columns=("test", "old", "new", "message"))
    before = {replay.row(c, by_case=True): c for c in old}
    after = {replay.row(c, by_case=True): c for c in new}
    regressed = fixed = 0
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        old_outcome, new_outcome = (a.outcome if a else "absent"), (b.outcome if b else "absent")
        if old_outcome == new_outcome and new_outcome != "failed":
            continue
        if new_outcome == "failed" and old_outcome != "failed":
            regressed += 1
        if old_outcome == "failed" and new_outcome in ("passed", "xfailed"):
            fixed += 1
        message = (b.message if b and b.message else a.message if a else "")[:240]
        section.rows.append({"test": name, "old": old_outcome, "new": new_outcome, "message": message})
    counts = {o: sum(c.outcome == o for c in new) for o in replay.OUTCOMES}
    section.summary = (f"{regressed} test(s) newly failing, {fixed} fixed; new side: "
                       + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    section.status = REGRESSED if regressed else CHANGED if section.rows else OK
    return section


def unexpressible(sides: Sequence[Side], configs: Sequence[Any], out: Path) -> dict[str, list[str]]:
    """Per side name, why it cannot train your fine-tuning as given (empty: it can). Asked of each side's venv
    before anything trains: on the old side it is a bad input (your settings do not fit the version you run); on
    the new side it is what the upgrade breaks."""
    import dataclasses

    if not configs:
        return {side.name: [] for side in sides}
    spec = json.dumps({"configs": [dataclasses.asdict(c) for c in configs]})

    def ask(side: Side) -> dict[str, str | None]:
        done = run_in(side, ["-m", "harness.upgrade.probe", "expressible", spec], out / f"{side.name}-expressible.log")
        return _json_of(done, "checking your settings", side)

    return {side.name: [f"{cell}: {why}" for cell, why in answers.items() if why]
            for side, answers in zip(sides, both(sides, ask))}


def planned_configs(opts: CheckOptions, *, bench: bool = False) -> list[Any]:
    """The cells both sides train: the tier's (narrowed and shrunk as asked), then yours (shrunk alike). With
    `bench`, one per cell group (throughput does not depend on the seed)."""
    from harness.suite import matrix

    shrink = {k: v for k, v in (("epochs", opts.epochs), ("max_train_samples", opts.max_train_samples)) if v}
    selection = matrix.Selection(models=opts.models or None, tasks=opts.tasks or None, seeds=opts.seeds or None,
                                 overrides=shrink, glue_dir=os.environ.get("GLUE_DIR") or None,
                                 yours=tuple(opts.finetune.configs) if opts.finetune is not None else ())
    pick = matrix.bench_cells if bench else matrix.cells
    return [c.config for tier in (opts.tier, matrix.YOURS) for c in pick(tier, selection)]


def check_cells(opts: CheckOptions) -> None:
    """The cells the trajectory and quality stages train, checked here as `harness run` checks its own (values,
    checkpoints, data and its rows): a bad input stops the check before any venv is built."""
    if not {"trajectory", "quality"} & set(opts.stages):
        return
    from harness.core.config import check_inputs
    from harness.data.loading import check_rows
    from harness.data.tasks import get_task

    for config in planned_configs(opts):
        check_inputs(config)
        check_rows(get_task(config.task), source=config.source, glue_dir=config.glue_dir)


def run_configs(side: Side, configs: Sequence[Any], folder: Path, log: Path, threads: int, what: str = "") -> list:
    """`harness run` of exactly these RunConfigs (every field, as JSON) in the side's venv; its records."""
    from harness.core.config import run_args
    from harness.store import recordsets

    folder.mkdir(parents=True, exist_ok=True)
    run_in(side, run_args(configs, folder.with_suffix(".configs.json"), threads=threads, output=folder), log,
           what=what)
    return recordsets.load([folder]).records if any(folder.iterdir()) else []


def tier_runs(sides: Sequence[Side], opts: CheckOptions, out: Path) -> list[tuple[list, list]]:
    """Per side: (the records of the tier's cells and yours, a pair of identical short runs of the first cell:
    the noise floor)."""
    import dataclasses

    configs = planned_configs(opts)

    def runs(side: Side) -> tuple[list, list]:
        records = run_configs(side, configs, out / f"{side.name}-runs", out / f"{side.name}-runs.log", opts.threads,
                              what=f"{len(configs)} cell(s)")
        first = next((r for r in sorted(records, key=lambda r: r.cell) if r.ok), None)
        if first is None:
            return records, []
        config = next(c for c in configs if c.cell_id == first.cell)
        short = dataclasses.replace(config, epochs=1.0, max_train_samples=REPLICATE_SAMPLES)
        twins = []
        for copy in ("a", "b"):  # the same short run twice: what this environment itself varies by
            twins += [r for r in run_configs(side, [short], out / f"{side.name}-replicate-{copy}",
                                             out / f"{side.name}-replicate-{copy}.log", opts.threads,
                                             what=f"noise-floor run {copy}") if r.ok]
        return records, [tuple(twins)] if len(twins) == 2 else []

    return both(sides, runs)


def trajectory_section(runs: Sequence[tuple[list, list]]) -> Section:
    from harness.upgrade import trajectory

    (old, old_twins), (new, new_twins) = runs
    parities = trajectory.parity(old, new, replicates=[*old_twins, *new_twins])
    section = Section("trajectory", "Trajectory parity: the first optimizer steps, same seed and data",
                      columns=("cell", "steps", "parity", "detail"))
    for p in parities:
        section.rows.append({"cell": p.cell, "steps": str(p.steps), "parity": p.status, "detail": p.describe()})
    differs = [p for p in parities if p.status == trajectory.DIFFERS]
    tol = parities[0].tolerance if parities else trajectory.FLOAT_FLOOR
    section.summary = (f"{len(differs)} of {len(parities)} cell(s) train differently from the first steps on"
                       if differs else f"all {len(parities)} cell(s) match within floating-point noise")
    section.notes.append(f"tolerance: relative {tol:.1e} (the larger of {trajectory.FLOAT_FLOOR:.0e} and "
                         f"{trajectory.NOISE_FACTOR:g} x the difference of two runs of one cell in one environment); "
                         "a different trajectory is a change to explain, not by itself a regression: the quality "
                         "section says whether it matters")
    section.status = CHANGED if differs or any(p.status == trajectory.MISSING for p in parities) else OK
    if not parities:
        section.status = ERROR
        section.summary = "cannot tell: no cell trained on both sides (see each side's runs log)"
    by_cell_old = {r.cell: r for r in old if r.ok}
    by_cell_new = {r.cell: r for r in new if r.ok}
    section.plots = {cell: {"old": [[s["step"], s["loss"]] for s in by_cell_old[cell].trajectory],
                            "new": [[s["step"], s["loss"]] for s in by_cell_new[cell].trajectory]}
                     for cell in sorted(by_cell_old.keys() & by_cell_new.keys())}
    return section


def quality_section(runs: Sequence[tuple[list, list]], opts: CheckOptions) -> Section:
    from harness.judging import registry
    from harness.core.evidence import Evidence
    from harness.judging.judge import JudgeSettings, RecordJudge
    from harness.judging.verdict import JUDGED
    from harness.reporting import render

    (old, _), (new, _) = runs
    settings = JudgeSettings(alpha=opts.alpha, missing_hint="the old side has no successful run of this cell")
    record_kinds = [j.kind for j in registry.JUDGES.values() if isinstance(j, RecordJudge)]  # throughput: its stage
    verdicts = registry.judge(Evidence(records=list(new)), Evidence(records=list(old)), settings, kinds=record_kinds)
    yours = " and your fine-tuning" if opts.finetune is not None else ""
    section = Section("quality", f"Quality: tier {opts.tier}{yours} on both sides, judged as `harness compare` does",
                      columns=("cell", "kind", "metric", "baseline", "now", "delta", "p", "verdict", "note"))
    section.rows = [{c: r[c] for c in section.columns} for r in (render.row(v) for v in verdicts)]
    failed_new = sorted({r.cell for r in new if not r.ok} - {r.cell for r in old if not r.ok})
    for cell in failed_new:
        error = next(r.error for r in new if r.cell == cell and not r.ok)
        section.rows.append({"cell": cell, "kind": "run", "metric": "-", "baseline": "ok", "now": "failed",
                             "delta": "-", "p": "-", "verdict": "REGRESSED", "note": (error or "")[:200]})
    bad = [v for v in verdicts if v.verdict == "regressed"]
    failed_both = sorted({r.cell for r in new if not r.ok} & {r.cell for r in old if not r.ok})
    section.summary = render.summary(verdicts) + (f"; {len(failed_new)} cell(s) fail only on the new side"
                                                  if failed_new else "")
    if failed_both:
        error = next(r.error for r in new if r.cell == failed_both[0] and not r.ok)
        section.notes.append(f"{len(failed_both)} cell(s) fail on both sides, so they say nothing about the "
                             f"upgrade ({', '.join(failed_both[:3])}; {failed_both[0]}: {(error or '')[:200]})")
    judged = any(v.verdict in JUDGED for v in verdicts)
    if not judged and not failed_new:
        section.summary = (f"cannot tell: no cell could be judged ({len(failed_both)} fail on both sides; see the "
                           "notes and each side's runs log)")
    section.status = REGRESSED if bad or failed_new else OK if judged else ERROR
    section.plots = {"metric": {side: {r.cell: r.primary() for r in records if r.ok}
                                for side, records in (("old", old), ("new", new))}}
    return section


def throughput(sides: Sequence[Side], opts: CheckOptions, out: Path) -> Section:
    import dataclasses

    from harness.upgrade import abtest

    cells = planned_configs(opts, bench=True)
    samples = abtest.interleaved(sides, [dataclasses.asdict(c) for c in cells], rounds=opts.rounds,
                                 steps=opts.steps, warmup=opts.warmup, threads=opts.threads, log_dir=out,
                                 progress=say)
    return throughput_section([c.group for c in cells], samples, opts)


def throughput_section(cells: Sequence[str], samples: Sequence[tuple[Any, Any]], opts: CheckOptions) -> Section:
    """Per cell: Mann-Whitney U on per-step seconds with the minimum effect, confirmed by the paired per-round
    test (abtest.py); a shift the rounds do not agree on is reported, not flagged."""
    import dataclasses

    from harness.judging import stats
    from harness.judging.throughput import ThroughputJudge
    from harness.judging.verdict import UNCHANGED, format_delta, format_interval, format_p
    from harness.upgrade import abtest

    section = Section("throughput", "Throughput: interleaved A/B rounds on this machine",
                      columns=("cell", "old s/step", "new s/step", "delta", "interval", "p (steps)", "p (rounds)",
                               "rounds say", "detectable", "verdict"))
    regressed = 0
    for cell, (old, new) in zip(cells, samples):
        verdict = stats.throughput_verdict(kind=ThroughputJudge.kind, cell=cell, metric="train s/step", baseline=old.steps,
                                           candidate=new.steps, alpha=opts.alpha, min_effect=opts.min_slowdown)
        paired = abtest.paired_test(old, new, alpha=opts.alpha, min_effect=opts.min_slowdown)
        agree = paired is not None and paired.p_value < opts.alpha and \
            abs(math.log1p(paired.effect)) >= math.log1p(opts.min_slowdown)
        if verdict.verdict in ("regressed", "improved") and not agree:
            verdict = dataclasses.replace(verdict, verdict=UNCHANGED)  # the rounds do not confirm the shift
        if paired is None:  # too few rounds for the test that confirms: it cannot tell, whatever the steps say
            verdict = dataclasses.replace(verdict, verdict="cannot tell")
        regressed += verdict.verdict == "regressed"
        detectable = "-" if paired is None else f"{paired.detectable:.1%}"
        section.rows.append({
            "cell": cell, "old s/step": f"{verdict.baseline:.4f}", "new s/step": f"{verdict.now:.4f}",
            "delta": format_delta(verdict), "interval": format_interval(verdict),
            "p (steps)": format_p(verdict.p_value), "p (rounds)": "-" if paired is None else format_p(paired.p_value),
            "rounds say": "-" if paired is None else f"{paired.effect:+.1%}",
            "detectable": detectable,
            "verdict": verdict.verdict.upper() if verdict.verdict == "regressed" else verdict.verdict})
        section.plots[cell] = {"old": old.round_medians, "new": new.round_medians}
    section.summary = (f"{regressed} of {len(cells)} cell(s) slower" if regressed else
                       f"no slowdown of {opts.min_slowdown:.0%} or more in {len(cells)} cell(s)")
    section.notes.append(f"{opts.rounds} timed rounds per side and cell ({opts.steps} steps, first {opts.warmup} "
                         f"dropped), A B B A order after one warm-up round each, {opts.threads} thread(s). Flagged "
                         f"when the median step time moves by ≥{opts.min_slowdown:.0%}, Mann-Whitney U on per-step "
                         f"seconds rejects at alpha {opts.alpha}, and the per-round ratios (rounds are the independent "
                         "units; 'rounds say' is their median) confirm it: Wilcoxon signed-rank at the same alpha, median beyond "
                         "the same minimum. 'detectable': the smallest slowdown "
                         "this run flags with 80 % power, from the spread of those ratios")
    busy = [b for old, new in samples for b in (*old.busy_cores, *new.busy_cores)]
    if busy:
        section.notes.append(f"other processes used {statistics.median(busy):.2f} cores (median; most "
                             f"{max(busy):.2f}) while the rounds ran: on a busy machine the rounds disagree more "
                             "and the detectable slowdown grows")
    undecided = [row["cell"] for row in section.rows if row["verdict"] == "cannot tell"]
    if undecided and not regressed:
        section.summary = (f"cannot tell: {len(undecided)} of {len(cells)} cell(s) had {opts.rounds} round(s); the "
                           f"paired test needs {abtest.min_rounds(opts.alpha)} at alpha {opts.alpha} (--rounds)")
    section.status = REGRESSED if regressed else ERROR if undecided else OK
    return section


# ---------------------------------------------------------------------------------------------- the check

def side_summary(side: Side) -> dict[str, Any]:
    from harness.invariants.defects import defects_for

    unique = {d.id: d for d in defects_for(side.transformers)} if side.transformers != "?" else {}
    return {"name": side.name, "spec": side.spec.label, "title": side.title, "versions": side.versions,
            "patch": side.spec.patch, "venv": str(side.venv.path),
            "known_defects": [{"id": d.id, "versions": d.versions, "link": d.link, "summary": d.summary}
                              for d in unique.values()]}


def run_check(sides: Sequence[Side], opts: CheckOptions, out: Path,
              progress: Callable[[str], None] = print) -> Report:
    """Every selected stage in order; a stage that cannot run is an ERROR section, the next stages still run
    (unless fail_fast)."""
    report = Report(sides=[side_summary(s) for s in sides], options={
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in opts.__dict__.items() if k != "finetune"}, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    if opts.finetune is not None:
        report.options["finetune"] = {"source": opts.finetune.source, "describe": opts.finetune.describe(),
                                      "notes": list(opts.finetune.notes),
                                      "cells": [c.cell_id for c in opts.finetune.configs]}
    global _progress
    began = time.perf_counter()
    _STOPPING.clear()  # a check interrupted earlier in this process does not stop this one
    _progress = progress
    run = StageRun(sides, opts, out, progress)
    for stage in (STAGES[name] for name in STAGES if name in opts.stages):
        progress(f"[{stage.name}] ...")
        started = time.perf_counter()
        try:
            made = stage.make(run)
        except Exception as err:  # one stage that cannot run must not lose the others' results
            why = str(err) if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"  # ours speak plainly
            made = Section(stage.name, stage.name, status=ERROR, summary=f"could not run: {why}")
        sections = made if isinstance(made, list) else [made]
        for section in sections:
            section.seconds = round((time.perf_counter() - started) / len(sections), 1)
            report.sections.append(section)
            progress(f"[{section.stage}] {section.status}: {section.summary} ({section.seconds:.0f} s)")
        if opts.fail_fast and any(s.status in FAILING for s in sections):
            break
    report.seconds = time.perf_counter() - began
    return report


def figures(section: Section) -> list[str]:
    """The HTML plots of a report section, drawn by the stage that made it (none for a section of another name)."""
    stage = STAGES.get(section.stage)
    return stage.figures(section) if stage is not None else []


def _trajectory_figures(section: Section) -> list[str]:
    from harness.reporting import html

    return [html.line_plot({"old": [tuple(p) for p in data["old"]], "new": [tuple(p) for p in data["new"]]},
                           title=f"{cell}: training loss per step", x_label="optimizer step", y_label="loss")
            for cell, data in section.plots.items()]


def _throughput_figures(section: Section) -> list[str]:
    from harness.reporting import html

    return [html.point_plot({side: [(side, statistics.median(values), statistics.pstdev(values))]
                             for side, values in data.items() if values},
                            title=f"{cell}: seconds per step (median of rounds ± sd)", y_label="s/step",
                            categories=("old", "new"))
            for cell, data in section.plots.items()]


def _quality_figures(section: Section) -> list[str]:
    from harness.reporting import html

    metric = section.plots.get("metric")
    if not metric:
        return []
    cells = sorted(set(metric.get("old", {})) | set(metric.get("new", {})))
    return [html.point_plot({side: [(cell, values[cell], 0.0) for cell in cells if values.get(cell) is not None]
                             for side, values in metric.items()},
                            title="primary metric per cell", y_label="metric", categories=cells)]
