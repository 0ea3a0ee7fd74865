"""The pytest plugin end to end with pytester: options, markers, ids, tiers, the single failure, baseline updates.

Fine-tuning is replaced by canned run records (harness.core.runner.run is monkeypatched), so these run in seconds;
tests/test_regression_faults.py drives the same plugin with real training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import harness.suite.plugin  # noqa: F401  (imported before pytester's module snapshots)
import harness.core.runner
from harness.core.record import RunRecord
from harness.invariants import defects

from test_baselines import make_record

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
BASE = ["-p", "harness.suite.plugin", "--strict-markers", "--harness-record-dir", "none"]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    # Renamed copies: a session that also collects suites/ has imported modules named test_smoke etc. already.
    for name in ("test_smoke.py", "test_glue.py", "test_throughput.py"):
        pytester.makepyfile(**{f"test_copy_{name[5:-3]}": (REPO / "suites" / name).read_text()})
    return pytester


@pytest.fixture
def fake_glue(tmp_path: Path) -> Path:
    for folder in ("MRPC", "CoLA", "QNLI"):
        (tmp_path / "glue" / folder).mkdir(parents=True)
        for split in ("dev", "test") if folder == "QNLI" else ("train", "dev", "test"):
            (tmp_path / "glue" / folder / f"{split}.tsv").write_text("x\n")
    return tmp_path / "glue"


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """runner.run returns a record whose accuracy is `accuracies[cell]` (default 0.9); no training happens."""
    accuracies: dict[str, float] = {}

    def run(config: Any, callbacks: Any = ()) -> RunRecord:
        record = make_record(seed=config.seed, task=config.task, model=config.model,
                             accuracy=accuracies.get(config.cell_id, 0.9))
        record["config"] = {**dataclasses.asdict(config), "resolved_device": "cpu"}
        return RunRecord(**record)

    monkeypatch.setattr(harness.core.runner, "run", run)
    return accuracies


def test_bad_option_values_name_the_value_and_the_allowed_ones(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(*BASE, "--harness-tiers", "glu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-tiers*Unknown tier 'glu'. Did you mean: glue, gpu? Available: glue, gpu, "
                                 "smoke, yours.*"])
    result = pytester.runpytest_inprocess(*BASE, "--harness-override", "lr=3")
    result.stderr.fnmatch_lines(["*expected KEY=VALUE with KEY one of*learning_rate*got 'lr=3'*"])
    result = pytester.runpytest_inprocess(*BASE, "--harness-tasks", "mrcp")
    result.stderr.fnmatch_lines(["*Unknown task 'mrcp'. Did you mean: mrpc?*"])
    result = pytester.runpytest_inprocess(*BASE, "--harness-seeds", "0,x")
    result.stderr.fnmatch_lines(["*non-negative integer seeds*got '0,x'*"])


def test_markers_are_registered_once(pytester: pytest.Pytester) -> None:
    lines = pytester.runpytest_inprocess(*BASE, "--markers").stdout.lines
    for name in ("contract", "smoke", "glue", "slow", "gpu", "benchmark"):
        assert sum(line.startswith(f"@pytest.mark.{name}:") for line in lines) == 1, name


def test_glue_ids_and_k_selection(suite: pytest.Pytester, fake_glue: Path) -> None:
    result = suite.runpytest_inprocess(*BASE, "--collect-only", "-q", "-m", "glue", "--harness-glue-dir",
                                       str(fake_glue))
    ids = [line.rsplit("/", 1)[-1] for line in result.stdout.lines if "::" in line]
    assert "test_copy_glue.py::test_quality[mrpc-minilm-s0]" in ids
    assert "test_copy_glue.py::test_quality[cola-minilm-s0]" in ids
    assert not any("qnli" in i or "sst2" in i for i in ids)  # QNLI has no training file, SST-2 no folder here
    assert "test_copy_throughput.py::test_train_throughput[mrpc-minilm-s0]" in ids
    narrowed = suite.runpytest_inprocess(*BASE, "--collect-only", "-q", "-m", "glue", "-k", "cola",
                                         "--harness-glue-dir", str(fake_glue))
    chosen = [line.rsplit("/", 1)[-1] for line in narrowed.stdout.lines if "::" in line]
    assert chosen and all("cola" in line for line in chosen)


def test_glue_is_opt_in_even_with_glue_dir(suite: pytest.Pytester, fake_glue: Path, canned: dict) -> None:
    result = suite.runpytest_inprocess(*BASE, "test_copy_glue.py", "-rs", "--harness-glue-dir", str(fake_glue))
    assert result.ret == 0
    result.assert_outcomes(skipped=4)  # mrpc, cola x 1 seed x 2 tests
    result.stdout.fnmatch_lines(["*glue tier is opt-in: run with -m glue or --harness-tiers glue*"])


def test_one_failure_with_a_table_and_nonzero_exit_only_on_regression(suite: pytest.Pytester, canned: dict,
                                                                      tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    args = [*BASE, "-m", "smoke and not benchmark", "--harness-baselines", str(root),
            "--harness-models", "tiny-bert", "--harness-tasks", "syn-sst2,syn-mrpc"]
    created = suite.runpytest_inprocess(*args, "--harness-update-baselines")
    assert created.ret == 0
    assert sorted(p.name for p in (root / "smoke" / "any").iterdir()) == ["syn-mrpc-tiny-bert-s0.json",
                                                                          "syn-sst2-tiny-bert-s0.json"]
    clean = suite.runpytest_inprocess(*args)
    assert clean.ret == 0
    clean.assert_outcomes(passed=4)
    canned["syn-sst2-tiny-bert-s0"] = 0.55
    broken = suite.runpytest_inprocess(*args, "--harness-markdown", str(tmp_path / "v.md"))
    assert broken.ret == pytest.ExitCode.TESTS_FAILED
    broken.assert_outcomes(passed=4, failed=1)
    out = broken.stdout.str()
    failures = out.split("short test summary info")[0]  # with CI set, pytest repeats the message untruncated below
    assert failures.count("regression(s) against the committed baselines") == 1
    assert out.count("FAILED ") == 1
    broken.stdout.fnmatch_lines(["*harness verdicts*", "cell*kind*metric*baseline*now*delta*interval*p*verdict*",
                                 "*syn-sst2-tiny-bert*quality*accuracy*0.9*0.55*-0.35*REGRESSED*"])
    assert "syn-mrpc-tiny-bert  quality" in out and "- syn-mrpc-tiny-bert" not in out
    markdown = (tmp_path / "v.md").read_text()
    assert "| syn-sst2-tiny-bert | quality | accuracy |" in markdown and "**REGRESSED**" in markdown
    version, known = defects.installed()  # the table lists the installed version's known upstream defects
    for defect in known:
        assert f"known upstream defect: transformers {version}: {defect.id}" in out
        assert f"- transformers {version}: {defect.id} (transformers {defect.versions}, {defect.link})" in markdown
    verdicts = json.loads((tmp_path / "v.json").read_text())["verdicts"]
    assert {v["verdict"] for v in verdicts} == {"regressed", "unchanged"}


def test_update_rewrites_only_the_selected_cells(suite: pytest.Pytester, canned: dict, tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    args = [*BASE, "-m", "smoke and not benchmark", "--harness-baselines", str(root), "--harness-models",
            "tiny-bert", "--harness-tasks", "syn-sst2,syn-mrpc", "--harness-update-baselines"]
    assert suite.runpytest_inprocess(*args).ret == 0
    mrpc = root / "smoke" / "any" / "syn-mrpc-tiny-bert-s0.json"
    before = mrpc.read_text()
    canned["syn-sst2-tiny-bert-s0"] = 0.5
    canned["syn-mrpc-tiny-bert-s0"] = 0.5
    updated = suite.runpytest_inprocess(*args, "-k", "sst2")
    assert updated.ret == 0  # accepting results never fails the session
    assert mrpc.read_text() == before
    sst2 = json.loads((root / "smoke" / "any" / "syn-sst2-tiny-bert-s0.json").read_text())
    assert sst2["record"]["metrics"]["validation"]["accuracy"] == 0.5


def test_failed_cell_is_reported_once_per_test(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    calls = []

    def broken(config: Any, callbacks: Any = ()) -> None:
        from harness.errors import TrainingError

        calls.append(config.cell_id)
        raise TrainingError("Training loss became nan at step 3")

    monkeypatch.setattr(harness.core.runner, "run", broken)
    result = suite.runpytest_inprocess(*BASE, "-m", "smoke and not benchmark", "--harness-models", "tiny-bert",
                                       "--harness-tasks", "syn-sst2", "--harness-baselines", str(tmp_path))
    result.assert_outcomes(failed=2)
    assert calls == ["syn-sst2-tiny-bert-s0"]  # fine-tuned once, shared by both tests
    result.stdout.fnmatch_lines(["*syn-sst2-tiny-bert-s0 could not be fine-tuned: Training loss became nan*"])


def test_benchmarks_are_opt_in(suite: pytest.Pytester, canned: dict) -> None:
    default = suite.runpytest_inprocess(*BASE, "test_copy_throughput.py", "-rs", "--harness-models", "tiny-bert",
                                        "--harness-tasks", "syn-sst2")
    default.assert_outcomes(skipped=2)
    default.stdout.fnmatch_lines(["*throughput benchmarks are opt-in*pytest suites/ -m benchmark*"])
    for opt_in in (["-m", "benchmark"], ["--harness-benchmarks"]):  # planned, not skipped (nothing is timed here)
        planned = suite.runpytest_inprocess(*BASE, "test_copy_throughput.py", "--setup-plan", "-rs", *opt_in,
                                            "--harness-models", "tiny-bert", "--harness-tasks", "syn-sst2")
        assert "opt-in" not in planned.stdout.str() and planned.stdout.str().count("SETUP    S harness_session") == 1


def test_cells_run_on_their_tiers_threads_unless_the_session_sets_them(monkeypatch) -> None:
    """A tier's `threads` applies when --harness-threads is not given; 0 is torch's own default (all cores)."""
    import dataclasses

    import torch

    from harness.suite import matrix
    from harness.suite.session import SessionOptions, SuiteSession

    tiers = {**matrix.TIERS, "wide": dataclasses.replace(matrix.TIERS["smoke"], name="wide", threads=0)}
    monkeypatch.setattr(matrix, "TIERS", tiers)
    before = torch.get_num_threads()
    try:
        session = SuiteSession(SessionOptions())
        session._set_threads("smoke")
        assert torch.get_num_threads() == 1
        session._set_threads("wide")
        assert torch.get_num_threads() == before
        pinned = SuiteSession(SessionOptions(threads=1))
        pinned._set_threads("wide")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
