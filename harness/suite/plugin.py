"""pytest plugin behind `pytest suites/`: options, markers, parametrization, a fixture, one failure. Nothing else.

All state lives on a `harness.suite.session.SuiteSession` created in pytest_configure; judging is the same pipeline
`harness compare` uses (harness.judging.registry). Loaded from the root conftest.py and as the `pytest11` entry
point "harness.suite.plugin" (same name, so it is registered once).

How a session goes: suites request `harness_cell` (quality, convergence) or `harness_bench_cell` (throughput) and
are parametrized over the selected tiers' matrix with ids like `mrpc-minilm-s0`. A cell is fine-tuned once per
session, whatever number of tests use it. Tests only register what they measured; after the last test the session
judges everything against results/baselines/, prints one table, writes it as markdown, and — when something
regressed — reports a single failure listing the regressions, so the exit status is non-zero exactly then.

Under pytest-xdist (`-n N`) a cell group's tests stay on one worker (unless --dist is given), each worker uses one
GPU of the machine's, and workers hand what they registered to the controller, which judges it all as a serial
session would. `--harness-shard I/N` keeps this machine's share of the cell groups (harness.suite.sharding).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.suite import options
from harness.core import distributed
from harness.core.config import PRESETS
from harness.core.models import cache_root
from harness.data.tasks import get_task
from harness.errors import HarnessError
from harness.judging.judge import JudgeSettings
from harness.suite.matrix import TIER_MARKERS, TIERS, YOURS, Selection, get_tier
from harness.reporting import render as report
from harness.reporting.render import failure_text
from harness.suite.session import CellFailed, SessionOptions, SuiteSession

MARKERS = {
    "contract": "Trainer.predict()/evaluate() output contracts (hypothesis property tests)",
    "training": "Trainer.train() invariants: two runs of the real Trainer that must agree (hypothesis)",
    "smoke": "tiny models x built-in tasks; minutes on a CPU",
    "glue": "MiniLM x the real GLUE tasks present in GLUE_DIR (opt-in: -m glue or --harness-tiers glue)",
    "slow": "full-size checkpoints with run_glue hyperparameters (the gpu tier)",
    "gpu": "needs a CUDA device",
    "benchmark": "throughput measurements (pytest-benchmark)",
    "yours": "your fine-tuning's cells (--harness-config FILE, harness.toml or [tool.harness])",
}
SESSION = pytest.StashKey[SuiteSession]()
FAILURE_NODEID = "harness::regressions"
GPUS = pytest.StashKey[list]()  # pytest-xdist controller: the GPUs it hands out, one per worker
BY_CELL = pytest.StashKey[bool]()  # pytest-xdist controller: schedule a cell group's tests as one unit


# ------------------------------------------------------------------------------------------------ options

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fine-tuning regression harness (pytest suites/)")
    add = group.addoption
    add("--harness-tiers", type=options.names("tier", get_tier), default=["smoke"], metavar="TIERS",
        help="tiers that run: smoke, glue, gpu (comma-separated). Tests of other tiers are skipped, saying how to "
             "enable them; a tier named in -m (e.g. -m glue) runs too. Default: smoke")
    options.add_selection(add, "harness-", default_models="each tier's own",
                          default_tasks="each tier's own (glue: those present in the GLUE dir)",
                          default_seeds="each tier's own (glue: 3 for mrpc/rte/cola)")
    add("--harness-preset", type=options.choice("preset", lambda: PRESETS), metavar="NAME",
        help="hyperparameter preset for every tier (seed, run_glue, smoke). Default: each tier's own")
    add("--harness-config", metavar="FILE",
        help="your fine-tuning (model, task, seeds, [training_arguments] with TrainingArguments names): its cells "
             "run as the `yours` tier next to the others, the training invariants draw cases around its settings, "
             "and a known defect of this transformers that its settings trigger fails instead of xfailing. Default: "
             "harness.toml or pyproject.toml [tool.harness] where pytest starts, if present")
    add("--harness-override", type=options.override, action="append", default=[], metavar="KEY=VALUE",
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
    options.add_judging(add, "harness-")
    add("--harness-speed-tolerance", type=options.non_negative, default=0.10, metavar="FRACTION",
        help="throughput is judged only when a fixed reference workload ran within this fraction of its speed at "
             "baseline time and held steady (shared machines swing 3x); otherwise: not comparable. Default: 0.10")
    add("--harness-busy-tolerance", type=options.non_negative, default=0.25, metavar="CORES",
        help="throughput is judged only when other processes used within this many CPU cores of what they used "
             "while the baseline was measured (a neighbour's job slows torch steps 10-25%%). Default: 0.25")
    add("--harness-benchmarks", action="store_true",
        help="run the throughput benchmarks (also when -m names benchmark): opt-in, for a quiet machine. Default: off")
    add("--harness-threads", type=options.threads, default=None, metavar="N",
        help="torch CPU threads for the session (0: torch's default). One thread keeps timings stable and runs "
             "bit-identical on a shared machine, where 2-thread torch slows 4x when a neighbour is busy. Default: "
             "each tier's own (smoke, gpu: 1; glue: all cores, to fit its budget on a quiet machine)")
    add("--harness-shard", type=options.shard, metavar="I/N",
        help="run shard I of N of the cell matrix (e.g. 1/2 on one machine, 2/2 on another; merge the record folders "
             "with `harness merge`). Whole task x model groups, balanced by the baselines' training seconds; the "
             "same options give the same split on every machine. Default: the whole matrix")


# ------------------------------------------------------------------------------------------------ the session

def session_options(config: pytest.Config) -> SessionOptions:
    """The session's options from the command line (and the ini file's folder as the project root)."""
    opt = config.getoption
    # The project root: where the ini file is, else where pytest was started. Not config.rootpath alone: with
    # no test path given, pytest takes the value of `--harness-record-dir DIR` (space form) for a test path
    # when it determines the rootdir, before plugin options are known.
    root = Path(config.inipath).parent if config.inipath else Path(config.invocation_params.dir)
    record_dir = opt("--harness-record-dir")
    markdown = opt("--harness-markdown")
    seeds, models, tasks = opt("--harness-seeds"), opt("--harness-models"), opt("--harness-tasks")
    finetune = _finetune(opt("--harness-config"), Path(config.invocation_params.dir))
    return SessionOptions(
        tiers=frozenset(set(opt("--harness-tiers")) | _tiers_in_markexpr(opt("markexpr", "") or "")
                        | ({YOURS} if finetune else set())),
        selection=Selection(models=tuple(models) if models else None, tasks=tuple(tasks) if tasks else None,
                            seeds=tuple(seeds) if seeds else None, preset=opt("--harness-preset"),
                            overrides=dict(opt("--harness-override")), glue_dir=opt("--harness-glue-dir"),
                            yours=tuple(finetune.configs) if finetune else ()),
        finetune=finetune,
        baseline_root=Path(opt("--harness-baselines") or root / "results" / "baselines"),
        record_root=None if (record_dir or "").lower() == "none" else Path(record_dir or root / "results"),
        markdown=Path(markdown) if markdown else None,
        update_baselines=opt("--harness-update-baselines"), threads=opt("--harness-threads"),
        shard=opt("--harness-shard"),
        judging=JudgeSettings(alpha=opt("--harness-alpha"), ttq_fraction=opt("--harness-ttq-fraction"),
                              min_slowdown=opt("--harness-min-slowdown"),
                              min_slowdown_run=opt("--harness-min-slowdown-run"),
                              speed_tolerance=opt("--harness-speed-tolerance"),
                              busy_tolerance=opt("--harness-busy-tolerance")))


def _check_task_rows(session: SessionOptions) -> None:
    """The rows of every task file the session names (--harness-tasks, your fine-tuning's task)."""
    named = [*(session.selection.tasks or ()), *(c.task for c in session.selection.yours)]
    users = [task for task in map(get_task, dict.fromkeys(named)) if task.user is not None]
    if users:
        from harness.data.loading import check_rows  # datasets: only when a task file is named

        for task in users:
            check_rows(task)


def _finetune(path: str | None, started_in: Path) -> Any:
    """Your fine-tuning from --harness-config, else harness.toml / [tool.harness] where pytest started; a bad file
    stops the session before anything trains (pytest prints the one message)."""
    from harness import finetune

    try:
        return finetune.resolve(path, started_in)
    except HarnessError as err:
        raise pytest.UsageError(f"--harness-config: {err}") from None


def _tiers_in_markexpr(expr: str) -> set[str]:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr))
    found = {w for w in words if w in TIERS}
    if "slow" in words:
        found.add("gpu")
    return found


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
    elif _is_worker(config):
        gpu = config.workerinput.get("harness_gpu")  # type: ignore[attr-defined]
        if gpu is not None:  # before anything starts CUDA in this worker
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    else:  # -n N alone (--dist load): a cell group's tests go to one worker, so each cell fine-tunes once
        config.stash[BY_CELL] = config.getoption("dist", None) == "load" and not _dist_given(config)
    session = session_options(config)
    try:  # before the first cell trains: a result written nowhere is lost, a bad row fails cells one by one
        options.writable_folder(cache_root(), "HARNESS_CACHE")
        if session.record_root is not None:
            options.writable_folder(session.record_root, "--harness-record-dir")
        if session.update_baselines:
            options.writable_folder(session.baseline_root, "--harness-baselines (updated by --harness-update-baselines)")
        elif config.getoption("--harness-baselines") and not session.baseline_root.is_dir():  # a typo: all "no baseline"
            raise HarnessError(f"--harness-baselines {session.baseline_root} is not a folder. Pass the folder that "
                               "holds <tier>/ baselines (results/baselines), or add --harness-update-baselines to "
                               "create it from this run.")
        glue_dir = config.getoption("--harness-glue-dir")
        if glue_dir and not Path(glue_dir).expanduser().is_dir():
            raise HarnessError(f"--harness-glue-dir {glue_dir} is not a folder. Pass the folder holding the GLUE "
                               "TSVs (DIR/MRPC/train.tsv, ...).")
        _check_task_rows(session)
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[SESSION] = SuiteSession(session)


def _dist_given(config: pytest.Config) -> bool:
    """Whether the user chose a pytest-xdist --dist mode (command line, PYTEST_ADDOPTS or the ini addopts)."""
    words = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split(),
             *config.getini("addopts")]
    return any(str(w) in ("-d", "--dist") or str(w).startswith("--dist=") for w in words)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller, per worker: the GPU it may use (CUDA_VISIBLE_DEVICES set by the worker)."""
    config = node.config
    if GPUS not in config.stash:
        config.stash[GPUS] = distributed.visible_gpus()
    node.workerinput["harness_gpu"] = distributed.worker_gpu(node.workerinput["workerid"], config.stash[GPUS])


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's own scope scheduling, with a cell group's tests (all seeds, quality, convergence, throughput) as one
    scope and every other test a scope of its own. Not --dist loadgroup: with pytest 9.2 its xdist_group marks
    no longer reach the scheduler (pytest-dev/pytest-xdist#1386), so a cell would fine-tune on several workers."""
    if not config.stash.get(BY_CELL, False):
        return None
    from xdist.scheduler import LoadScopeScheduling

    units = _session(config).cell_units()

    class CellGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            param = nodeid[nodeid.rfind("[") + 1:-1] if nodeid.endswith("]") else ""
            return units.get(param, nodeid)

    return CellGroupScheduling(config, log)


def _session(config: pytest.Config) -> SuiteSession:
    return config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = _session(metafunc.config)
    for name, builder in (("harness_cell", session.cells), ("harness_bench_cell", session.bench_cells)):
        if name not in metafunc.fixturenames:
            continue
        own = [m.name for m in metafunc.definition.iter_markers() if m.name in TIERS]
        params = []
        # A tier's own suite lists its cells even when the tier is off (skipped, saying how to enable it); tests
        # shared by all tiers (throughput) run over the enabled tiers only.
        for tier in own or [t for t in TIERS if t in session.options.tiers]:
            tier_marks = [] if own else [getattr(pytest.mark, tier), *(getattr(pytest.mark, m)
                                                                       for m in TIERS[tier].markers)]
            for cell in builder(tier):
                marks = [*tier_marks, pytest.mark.xdist_group(cell.group)]
                params.append(pytest.param(cell, id=cell.id, marks=marks))
        metafunc.parametrize(name, params)


BENCHMARKS_OPT_IN = ("throughput benchmarks are opt-in: they need a quiet machine and a process of their own "
                     "(after fine-tuning in the same process they run 10-60 % slower); run pytest suites/ -m benchmark")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = _session(config)
    benchmarks = config.getoption("--harness-benchmarks") or "benchmark" in re.findall(
        r"[A-Za-z_][A-Za-z0-9_]*", config.getoption("markexpr", "") or "")
    for item in items:
        if not benchmarks and item.get_closest_marker("benchmark") is not None:
            item.add_marker(pytest.mark.skip(reason=BENCHMARKS_OPT_IN))
            continue
        for marker in item.iter_markers():
            if marker.name in TIER_MARKERS:
                tier = TIERS["gpu" if marker.name == "slow" else marker.name]
                reason = session.skip_reason(tier)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest) -> SuiteSession:
    """The suite session: `fine_tune(cell)`, `expect(kind, cell, record)`, `measure(cell, part, benchmark)`."""
    return _session(request.config)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[Any]:
    """A cell that could not be fine-tuned fails each test using it with one line, not a traceback."""
    try:
        return (yield)
    except CellFailed as err:
        pytest.fail(str(err), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[Any]:
    result = yield
    suite = _session(session.config)
    if _is_worker(session.config):  # the controller judges what every worker registered, as one session would
        output = session.config.workeroutput  # type: ignore[attr-defined]
        output["harness_expected"] = suite.export()
        output["harness_written"] = [str(p) for p in suite.written]
        return result
    try:
        verdicts = suite.conclude()
    except HarnessError as err:  # e.g. an unreadable baseline file: one failure saying what to do
        _report_failure(session, f"harness could not judge this session: {err}")
        return result
    if suite.failing():
        _report_failure(session, failure_text(verdicts))
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: take over what a finished worker registered and wrote."""
    output = getattr(node, "workeroutput", None) or {}
    suite = _session(node.config)
    suite.absorb(output.get("harness_expected") or {})
    suite.written.extend(Path(p) for p in output.get("harness_written") or [])


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
    suite = _session(config)
    if _is_worker(config) or not suite.verdicts:
        return
    terminalreporter.section("harness verdicts")
    terminalreporter.write_line(report.text_table(suite.verdicts))
    counts: dict[str, int] = {}
    for verdict in suite.verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    terminalreporter.write_line("")
    terminalreporter.write_line(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for defect in suite.known_defects:
        terminalreporter.write_line(f"known upstream defect: {defect}", yellow=True)
    options = suite.options
    if options.verdicts_markdown:
        terminalreporter.write_line(f"markdown: {options.verdicts_markdown}")
    if options.update_baselines:
        baselines = [p for p in suite.written if options.baseline_root in p.parents]
        terminalreporter.write_line(f"updated {len(baselines)} baseline file(s) under {options.baseline_root}; "
                                    "commit them to accept these results", green=True)
    elif suite.failing():
        terminalreporter.write_line(f"harness: {sum(v.verdict == 'regressed' for v in suite.verdicts)} "
                                    "regression(s); see the failure 'harness::regressions' above", red=True)
