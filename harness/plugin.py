"""pytest plugin behind `pytest suites/`: options, markers, the cell matrix, one verdict table, one failure.

Thin by design: pytest hooks only translate; all state lives on one `HarnessSession` created in pytest_configure,
statistics live in compare.py, files in baselines.py/results.py, rendering in report.py. Loaded from the root
conftest.py and as the `pytest11` entry point "harness.plugin" (same name, so it is registered once).

How a session goes: suites request `harness_cell` (quality, convergence) or `harness_bench_cell` (throughput) and
are parametrized over the selected tiers' matrix with ids like `mrpc-minilm-s0`. A cell is fine-tuned once per
session, whatever number of tests use it. Tests only register what they measured; after the last test the session
judges everything against results/baselines/, prints one table, writes it as markdown, and — when something
regressed — reports a single failure listing the regressions, so the exit status is non-zero exactly then.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.tiers import TIER_MARKERS, TIERS, Tier, glue_tasks_present

MARKERS = {
    "contract": "Trainer.predict()/evaluate() output contracts (hypothesis property tests)",
    "smoke": "tiny models x built-in tasks; minutes on a CPU",
    "glue": "MiniLM x the real GLUE tasks present in GLUE_DIR (opt-in: -m glue or --harness-tiers glue)",
    "slow": "full-size checkpoints with run_glue hyperparameters (the gpu tier)",
    "gpu": "needs a CUDA device",
    "benchmark": "throughput measurements (pytest-benchmark)",
}
SESSION = pytest.StashKey["HarnessSession"]()
FAILURE_NODEID = "harness::regressions"


# ------------------------------------------------------------------------------------------------ option types

def _names(kind: str, lookup: Callable[[str], Any]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"expected one or more {kind} names separated by commas, got {text!r}")
        for name in names:
            try:
                lookup(name)
            except HarnessError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        return names
    return parse


def _tier(name: str) -> None:
    if name not in TIERS:
        from harness.errors import UnknownNameError

        raise UnknownNameError("tier", name, TIERS)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected non-negative integer seeds separated by commas (e.g. 0,1,2), "
                                         f"got {text!r}")
    return seeds


def _preset(name: str) -> str:
    from harness.runner import PRESETS

    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}; allowed: {', '.join(sorted(PRESETS))}")
    return name


def _overridable() -> dict[str, dataclasses.Field]:
    from harness.runner import RunConfig

    return {f.name: f for f in dataclasses.fields(RunConfig) if f.name not in ("model", "task", "seed", "preset")}


def _override(text: str) -> tuple[str, Any]:
    fields = _overridable()
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in fields:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}; "
                                         f"got {text!r}")
    kind = str(fields[key].type)
    raw = raw.strip()
    try:
        if raw.lower() == "none":
            value: Any = None
        elif "int" in kind:
            value = int(raw)
        elif "float" in kind:
            value = float(raw)
        else:
            value = raw
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key} needs a {kind.replace(' | None', '')} value, got {raw!r}") from None
    return key, value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _threads(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a thread count (0 = torch's default), got {text!r}")
    return int(text)


def pytest_addoption(parser: pytest.Parser) -> None:
    from harness.models import get_model
    from harness.tasks import get_task

    group = parser.getgroup("harness", "fine-tuning regression harness (pytest suites/)")
    add = group.addoption
    add("--harness-tiers", type=_names("tier", _tier), default=["smoke"], metavar="TIERS",
        help="tiers that run: smoke, glue, gpu (comma-separated). Tests of other tiers are skipped, saying how to "
             "enable them; a tier named in -m (e.g. -m glue) runs too. Default: smoke")
    add("--harness-models", type=_names("model", get_model), metavar="NAMES",
        help="models for every tier (registry names, local folders or hub ids). Default: each tier's own")
    add("--harness-tasks", type=_names("task", get_task), metavar="NAMES",
        help="tasks for every tier. Default: each tier's own (glue: those present in the GLUE dir)")
    add("--harness-seeds", type=_seeds, metavar="INTS",
        help="training seeds for every cell, e.g. 0,1,2. Default: each tier's own (glue: 3 for mrpc/rte/cola)")
    add("--harness-preset", type=_preset, metavar="NAME",
        help="hyperparameter preset for every tier (seed, run_glue, smoke). Default: each tier's own")
    add("--harness-override", type=_override, action="append", default=[], metavar="KEY=VALUE",
        help="set a RunConfig field for every cell, e.g. max_train_samples=1024 (repeatable). Default: none")
    add("--harness-glue-dir", metavar="DIR", default=os.environ.get("GLUE_DIR") or None,
        help="folder in the original GLUE TSV layout (DIR/MRPC/train.tsv, ...). Default: $GLUE_DIR")
    add("--harness-baselines", metavar="DIR",
        help="baselines root (<tier>/any/<cell>.json, <tier>/<device>/<cell>.throughput.json). "
             "Default: <project>/results/baselines (project: the pytest ini file's folder, else the current one)")
    add("--harness-record-dir", metavar="DIR",
        help="where run records (DIR/runs/), throughput measurements (DIR/throughput/) and verdicts.{md,json} "
             "go; 'none' writes nothing. Default: <project>/results")
    add("--harness-update-baselines", action="store_true",
        help="accept this session's results: rewrite the baselines of the selected cells only (the verdicts are "
             "still shown, against the old baselines, and do not fail the session). Default: off")
    add("--harness-markdown", metavar="FILE",
        help="write the verdict table as markdown here (for CI comments), and as JSON beside it (.json). "
             "Default: <record-dir>/verdicts.md")
    add("--harness-alpha", type=_probability, default=0.01, metavar="P",
        help="significance level of every verdict. Default: 0.01")
    add("--harness-min-slowdown", type=_non_negative, default=0.10, metavar="FRACTION",
        help="smallest throughput change flagged, as a fraction of the baseline's median step time. Default: 0.10")
    add("--harness-ttq-fraction", type=_probability, default=0.9, metavar="F",
        help="time-to-quality target: this fraction of the baseline's final metric. Default: 0.9")
    add("--harness-speed-tolerance", type=_non_negative, default=0.10, metavar="FRACTION",
        help="throughput is judged only when a fixed reference workload ran within this fraction of its speed at "
             "baseline time and held steady (shared machines swing 3x); otherwise: not comparable. Default: 0.10")
    add("--harness-busy-tolerance", type=_non_negative, default=0.25, metavar="CORES",
        help="throughput is judged only when other processes used within this many CPU cores of what they used "
             "while the baseline was measured (a neighbour's job slows torch steps 10-25%%). Default: 0.25")
    add("--harness-threads", type=_threads, default=1, metavar="N",
        help="torch CPU threads for the session (0: torch's default). One thread keeps timings stable and runs "
             "bit-identical on a shared machine, where 2-thread torch slows 4x when a neighbour is busy. Default: 1")


# ------------------------------------------------------------------------------------------------ the session

@dataclass(frozen=True)
class Cell:
    """One parametrization: a tier and the RunConfig it fine-tunes."""

    tier: str
    config: Any  # harness.runner.RunConfig

    @property
    def id(self) -> str:
        return self.config.cell_id

    @property
    def group(self) -> str:
        from harness.baselines import group_id

        return group_id(self.config.task, self.config.model)

    def __str__(self) -> str:
        return self.id


class HarnessSession:
    """Everything one pytest session knows: options, the matrix, finished cells, measurements, verdicts."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        self.config = config
        # The project root: where the ini file is, else where pytest was started. Not config.rootpath alone: with
        # no test path given, pytest takes the value of `--harness-record-dir DIR` (space form) for a test path
        # when it determines the rootdir, before plugin options are known.
        root = Path(config.inipath).parent if config.inipath else Path(config.invocation_params.dir)
        self.tiers = set(opt("--harness-tiers")) | _tiers_in_markexpr(config.getoption("markexpr", "") or "")
        self.models, self.tasks, self.seeds = opt("--harness-models"), opt("--harness-tasks"), opt("--harness-seeds")
        self.preset = opt("--harness-preset")
        self.overrides = dict(opt("--harness-override"))
        self.glue_dir = opt("--harness-glue-dir")
        self.baseline_root = Path(opt("--harness-baselines") or root / "results" / "baselines")
        record_dir = opt("--harness-record-dir")
        self.record_root = None if (record_dir or "").lower() == "none" else Path(record_dir or root / "results")
        markdown = opt("--harness-markdown")
        self.markdown = Path(markdown) if markdown else (self.record_root / "verdicts.md"
                                                          if self.record_root else None)
        self.update = opt("--harness-update-baselines")
        self.alpha, self.min_slowdown = opt("--harness-alpha"), opt("--harness-min-slowdown")
        self.ttq_fraction, self.speed_tolerance = opt("--harness-ttq-fraction"), opt("--harness-speed-tolerance")
        self.threads = opt("--harness-threads")
        self.busy_tolerance = opt("--harness-busy-tolerance")
        self._cells: dict[Any, dict[str, Any] | Exception] = {}
        self.quality: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
        self.convergence: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
        self.throughput: dict[tuple[str, str], dict[str, Any]] = {}
        self.verdicts: list[Any] = []
        self.worker_verdicts: list[dict[str, Any]] = []
        self.written: list[Path] = []
        self.concluded = False

    # -- matrix ------------------------------------------------------------------------------------------------
    def cells(self, tier_name: str) -> list[Cell]:
        from harness.runner import make_config
        from harness.tasks import get_task

        tier = TIERS[tier_name]
        tasks = list(self.tasks or (glue_tasks_present(tier.tasks, self.glue_dir) if tier.needs_glue
                                    else tier.tasks))
        out = []
        for task in tasks:
            glue = get_task(task).benchmark == "glue"
            for model in self.models or tier.models:
                for seed in self.seeds or tier.seeds_for(task):
                    settings = {**tier.settings(task), **self.overrides}
                    if glue:
                        settings.setdefault("glue_dir", self.glue_dir)
                    out.append(Cell(tier_name, make_config(model, task, seed=seed, preset=self.preset or tier.preset,
                                                           **settings)))
        return out

    def bench_cells(self, tier_name: str) -> list[Cell]:
        """One cell per task x model (throughput does not depend on the seed): the first seed's."""
        tier = TIERS[tier_name]
        seen, out = set(), []
        for cell in self.cells(tier_name):
            if tier.bench.tasks is not None and not self.tasks and cell.config.task not in tier.bench.tasks:
                continue
            if cell.group not in seen:
                seen.add(cell.group)
                out.append(cell)
        return out

    def skip_reason(self, tier: Tier) -> str | None:
        if tier.name not in self.tiers:
            how = "-m slow" if tier.name == "gpu" else f"-m {tier.name}"
            return f"{tier.name} tier is opt-in: run with {how} or --harness-tiers {tier.name}"
        if tier.needs_glue and not self.glue_dir and not self.tasks:
            return f"{tier.name} tier needs GLUE data: set GLUE_DIR or --harness-glue-dir DIR"
        if tier.needs_cuda and not _cuda():
            return f"{tier.name} tier needs a CUDA device; torch sees none"
        return None

    # -- running -------------------------------------------------------------------------------------------------
    def _threads(self) -> None:
        if self.threads:
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def fine_tune(self, cell: Cell) -> dict[str, Any]:
        """The cell's run record; the first call fine-tunes, later calls (any test) reuse it."""
        from harness import results, runner

        if cell.config not in self._cells:
            self._threads()
            try:
                record = runner.run(cell.config).to_dict()
            except HarnessError as err:
                self._cells[cell.config] = err
            else:
                self._cells[cell.config] = record
                if self.record_root:
                    self.written.append(results.write_record(record, self.record_root))
        found = self._cells[cell.config]
        if isinstance(found, Exception):
            pytest.fail(f"{cell.id} could not be fine-tuned: {found}", pytrace=False)
        return found

    def expect_quality(self, cell: Cell, record: dict[str, Any]) -> None:
        self.quality.setdefault((cell.tier, cell.config.task, cell.config.model), {})[cell.config.seed] = record

    def expect_convergence(self, cell: Cell, record: dict[str, Any]) -> None:
        self.convergence.setdefault((cell.tier, cell.config.task, cell.config.model), {})[cell.config.seed] = record

    def measure(self, cell: Cell, part: str, benchmark: Any = None, callbacks: tuple[Any, ...] = ()) -> dict:
        """Time training steps ("train") or prediction batches ("eval") of a cell, through pytest-benchmark's
        pedantic mode when `benchmark` is given; registers the result for the throughput verdict."""
        from harness import throughput

        self._threads()
        bench_settings = TIERS[cell.tier].bench
        if part == "train":
            bench: Any = throughput.TrainBench(cell.config, steps=bench_settings.steps, warmup=bench_settings.warmup,
                                               callbacks=callbacks)
            target = bench.train_round
        else:
            bench = throughput.EvalBench(cell.config, eval_samples=bench_settings.eval_samples, callbacks=callbacks)
            target = bench.eval_round
        if benchmark is not None:
            benchmark.pedantic(target, setup=bench.setup, rounds=bench_settings.rounds, iterations=1)
        else:
            for _ in range(bench_settings.rounds):
                args, _ = bench.setup()
                target(*args)
        result = bench.result()
        context = throughput.measurement_context(cell.config, bench.prepared)
        entry = self.throughput.setdefault((cell.tier, cell.group), {
            "group": cell.group, "device_class": context["env"]["device_class"], "context": context})
        entry[part] = result
        if benchmark is not None:
            benchmark.extra_info.update({f"{part}_median_seconds": result.get("median_step_seconds",
                                                                              result.get("median_batch_seconds")),
                                         f"{part}_samples_per_second": result["samples_per_second"],
                                         f"{part}_tokens_per_second": result["tokens_per_second"]})
        if self.record_root:
            self._write_measurement(cell, part, entry, result)
        return result

    def _write_measurement(self, cell: Cell, part: str, entry: dict[str, Any], result: dict[str, Any]) -> None:
        from harness.baselines import now_iso
        from harness.results import write_json_atomic

        env = entry["context"]["env"]
        stamp = now_iso().replace(":", "").replace("-", "").replace("+0000", "Z")
        path = (self.record_root / "throughput" / env["machine_id"] / env["env_key"]
                / f"{cell.group}-{part}-{stamp}-{os.getpid()}.json")
        payload = {"schema_version": 1, "kind": f"{part}-throughput", "tier": cell.tier, "measured_at": now_iso(),
                   "group": cell.group, "device_class": entry["device_class"], "context": entry["context"],
                   part: result}
        self.written.append(write_json_atomic(path, payload))

    # -- judging -------------------------------------------------------------------------------------------------
    def judge(self) -> list[Any]:
        """Every verdict of this session (pure functions over the records and the stored baselines)."""
        from harness import baselines as bl

        verdicts = []
        for (tier, task, model), by_seed in sorted(self.quality.items()):
            stored = bl.quality_group(self.baseline_root, tier, task, model)
            records = [by_seed[s] for s in sorted(by_seed)]
            verdicts += bl.judge_quality(bl.group_id(task, model), records, stored, alpha=self.alpha)
        for (tier, task, model), by_seed in sorted(self.convergence.items()):
            stored = bl.quality_group(self.baseline_root, tier, task, model)
            records = [by_seed[s] for s in sorted(by_seed)]
            verdicts += bl.judge_convergence(bl.group_id(task, model), records, stored, fraction=self.ttq_fraction)
        for (tier, group), measurement in sorted(self.throughput.items()):
            path = bl.throughput_path(self.baseline_root, tier, measurement["device_class"], group)
            stored = bl.read_baseline(path)
            available = bl.throughput_classes(self.baseline_root, tier, group)
            for part in ("train", "eval"):
                if part in measurement:
                    verdicts.append(bl.judge_throughput(
                        group, part, measurement, stored, alpha=self.alpha, min_effect=self.min_slowdown,
                        speed_tolerance=self.speed_tolerance, busy_tolerance=self.busy_tolerance,
                        available=available))
        return verdicts

    def update_baselines(self) -> list[Path]:
        """Rewrite the baselines of the cells this session ran (and only those)."""
        from harness import baselines as bl

        written = []
        for store in (self.quality, self.convergence):
            for (tier, _task, _model), by_seed in store.items():
                for record in by_seed.values():
                    if record.get("status") == "ok":
                        path = bl.quality_path(self.baseline_root, tier, record["cell"])
                        if path not in written:
                            written.append(bl.write_baseline(path, bl.quality_baseline(record, tier=tier)))
        for (tier, group), measurement in self.throughput.items():
            path = bl.throughput_path(self.baseline_root, tier, measurement["device_class"], group)
            merged = {**(bl.read_baseline(path) or {}), **measurement}  # a part not measured now keeps its old value
            written.append(bl.write_baseline(path, bl.throughput_baseline(merged, tier=tier)))
        return written

    def conclude(self) -> list[Any]:
        """Judge, then (if asked) update baselines and write the markdown/JSON table. Runs once."""
        from harness import report
        from harness.compare import Verdict
        from harness.results import write_json_atomic

        if self.concluded:
            return self.verdicts
        self.concluded = True
        self.verdicts = self.judge() + [Verdict.from_dict(v) for v in self.worker_verdicts]
        if self.update:
            self.written += self.update_baselines()
        if self.markdown and self.verdicts and not _is_worker(self.config):  # xdist: the controller writes it
            self.markdown.parent.mkdir(parents=True, exist_ok=True)
            self.markdown.write_text(report.markdown(self.verdicts), encoding="utf-8")
            write_json_atomic(self.markdown.with_suffix(".json"),
                              report.verdicts_payload(self.verdicts, baselines=str(self.baseline_root),
                                                      updated=self.update))
        return self.verdicts

    def failing(self) -> bool:
        from harness.compare import regressions

        return bool(regressions(self.verdicts)) and not self.update


def _tiers_in_markexpr(expr: str) -> set[str]:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr))
    found = {w for w in words if w in TIERS}
    if "slow" in words:
        found.add("gpu")
    return found


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# ------------------------------------------------------------------------------------------------ hooks

def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        if name == "benchmark" and config.pluginmanager.hasplugin("benchmark"):
            continue  # pytest-benchmark registers it (same marker, its settings keywords still apply)
        config.addinivalue_line("markers", f"{name}: {text}")
    if not config.pluginmanager.hasplugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): keep a cell's tests on one pytest-xdist worker")
    config.stash[SESSION] = HarnessSession(config)


def _session(config: pytest.Config) -> HarnessSession:
    return config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    harness = _session(metafunc.config)
    for name, builder in (("harness_cell", harness.cells), ("harness_bench_cell", harness.bench_cells)):
        if name not in metafunc.fixturenames:
            continue
        own = [m.name for m in metafunc.definition.iter_markers() if m.name in TIERS]
        params = []
        # A tier's own suite lists its cells even when the tier is off (skipped, saying how to enable it); tests
        # shared by all tiers (throughput) run over the enabled tiers only.
        for tier in own or [t for t in TIERS if t in harness.tiers]:
            tier_marks = [] if own else [getattr(pytest.mark, tier), *(getattr(pytest.mark, m)
                                                                       for m in TIERS[tier].markers)]
            for cell in builder(tier):
                marks = [*tier_marks, pytest.mark.xdist_group(cell.group)]
                params.append(pytest.param(cell, id=cell.id, marks=marks))
        metafunc.parametrize(name, params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    harness = _session(config)
    for item in items:
        for marker in item.iter_markers():
            if marker.name in TIER_MARKERS:
                tier = TIERS["gpu" if marker.name == "slow" else marker.name]
                reason = harness.skip_reason(tier)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> HarnessSession:
    """The session object: `fine_tune(cell)`, `expect_quality`, `expect_convergence`, `measure`."""
    return _session(request.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[Any]:
    result = yield
    harness = _session(session.config)
    from harness.report import failure_text

    try:
        verdicts = harness.conclude()
    except HarnessError as err:  # e.g. an unreadable baseline file: one failure saying what to do
        _report_failure(session, f"harness could not judge this session: {err}")
        return result
    if _is_worker(session.config):
        output = session.config.workeroutput  # type: ignore[attr-defined]
        output["harness_verdicts"] = [v.to_dict() for v in verdicts]
        output["harness_written"] = [str(p) for p in harness.written]
    elif harness.failing():
        _report_failure(session, failure_text(verdicts))
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: gather the workers' verdicts into one table."""
    output = getattr(node, "workeroutput", {})
    harness = _session(node.config)
    harness.worker_verdicts.extend(output.get("harness_verdicts") or [])
    harness.written.extend(Path(p) for p in output.get("harness_written") or [])


def _report_failure(session: pytest.Session, text: str) -> None:
    """One failed pseudo-test carrying the regression list: counted in the summary, exit status 1, JUnit XML."""
    location = ("harness", None, "regressions")
    hook = session.config.hook
    session.testscollected += 1  # keeps the progress counter at 100 %
    hook.pytest_runtest_logstart(nodeid=FAILURE_NODEID, location=location)
    report = pytest.TestReport(nodeid=FAILURE_NODEID, location=location, keywords={"harness": 1},
                               outcome="failed", longrepr=text, when="call")
    hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=FAILURE_NODEID, location=location)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from harness import report

    harness = _session(config)
    if _is_worker(config) or not harness.verdicts:
        return
    terminalreporter.section("harness verdicts")
    terminalreporter.write_line(report.text_table(harness.verdicts))
    counts = {}
    for verdict in harness.verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    terminalreporter.write_line("")
    terminalreporter.write_line(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if harness.markdown:
        terminalreporter.write_line(f"markdown: {harness.markdown}")
    if harness.update:
        baselines = [p for p in harness.written if harness.baseline_root in p.parents]
        terminalreporter.write_line(f"updated {len(baselines)} baseline file(s) under {harness.baseline_root}; "
                                    "commit them to accept these results", green=True)
    elif harness.failing():
        terminalreporter.write_line(f"harness: {sum(v.verdict == 'regressed' for v in harness.verdicts)} "
                                    "regression(s); see the failure 'harness::regressions' above", red=True)
