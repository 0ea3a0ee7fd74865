"""`harness run` with bad input: one clear error before anything trains, no traceback, finished cells kept."""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import harness.suite.plugin  # noqa: F401  (imported before pytester's module snapshots)
from harness.cli import main
from harness.core import runner
from harness.store import results

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parent.parent
TINY = ["--models", "tiny-bert", "--tasks", "syn-sst2", "--max-train-samples", "64", "--max-eval-samples", "32",
        "--epochs", "1"]


def harness_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["run", *args])
    except SystemExit as exit_info:  # argparse refuses a value
        code = exit_info.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def refused_up_front(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The run stops with exit 2 and one error line before any cell starts; returns that line."""
    code, out, err = harness_run(capsys, *args)
    assert code == 2 and "[1/" not in out
    [line] = [line for line in err.splitlines() if "error:" in line]
    return line


@pytest.mark.parametrize(("args", "expected"), [
    (["--epochs", "inf"], "argument --epochs: expected a positive finite number, got 'inf'"),
    (["--epochs", "nan"], "argument --epochs: expected a positive finite number, got 'nan'"),
    (["--seeds", "99999999999999"], "argument --seeds: expected non-negative integer seeds up to 4294967295"),
    (["--learning-rate", "-1"], "argument --learning-rate: expected a positive finite number, got '-1'"),
])
def test_out_of_range_numbers_are_refused_with_the_allowed_range(args: list, expected: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in refused_up_front(capsys, *TINY, *args)


def test_output_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results"
    target.write_text("not a folder")
    line = refused_up_front(capsys, *TINY, "--output", str(target))
    assert f"--output {target} is a file, not a folder; pass a folder" in line


def test_output_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if _writable(locked):  # root writes anywhere: use a kernel file system that refuses everyone
        locked = Path("/sys/kernel")
        if not locked.is_dir() or _writable(locked):
            pytest.skip("no read-only folder available to this user")
    line = refused_up_front(capsys, *TINY, "--output", str(locked / "results"))
    assert f"--output {locked / 'results'} cannot be written" in line and "Pass a folder you can write to" in line


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").mkdir()
    except OSError:
        return False
    (folder / "probe").rmdir()
    return True


def test_divergence_fails_the_cell_with_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = harness_run(capsys, *TINY, "--learning-rate", "1e9", "--output", str(tmp_path))
    assert code == 1
    assert "FAILED: Training diverged in syn-sst2-tiny-bert-s0: the eval loss was nan" in out
    assert "Lower the learning rate (--learning-rate, now 1e+09)" in out
    [record] = results.load_records(results.find_records(tmp_path))
    assert record["status"] == "failed" and "diverged" in record["error"]


class _Explode(TrainerCallback):
    """Scales the classifier 10^4x before the epoch's eval: a finite loss orders of magnitude above chance."""

    def on_epoch_end(self, args, state, control, model=None, **kwargs) -> None:
        with torch.no_grad():
            model.classifier.weight.mul_(1e4)


def test_a_later_diverging_cell_keeps_the_earlier_record(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner.run_cell

    def second_explodes(config, *, callbacks=()):
        return real(config, callbacks=[*callbacks, *([_Explode()] if config.task == "syn-mrpc" else [])])

    monkeypatch.setattr(runner, "run_cell", second_explodes)
    code, out, _ = harness_run(capsys, *TINY, "--tasks", "syn-sst2,syn-mrpc", "--output", str(tmp_path))
    assert code == 1
    assert "[2/2] syn-mrpc-tiny-bert-s0\n    FAILED: Training diverged" in out
    stored = {r["cell"]: r for r in results.load_records(results.find_records(tmp_path))}
    assert stored["syn-sst2-tiny-bert-s0"]["status"] == "ok"
    assert stored["syn-sst2-tiny-bert-s0"]["metrics"]["validation"]["accuracy"] is not None
    assert stored["syn-mrpc-tiny-bert-s0"]["status"] == "failed"
    assert "a model that learned nothing scores 0.6931" in stored["syn-mrpc-tiny-bert-s0"]["error"]


@pytest.mark.parametrize(("task", "length", "shortest"), [("syn-sst2", "1", 3), ("syn-mrpc", "4", 5)])
def test_max_length_below_the_special_tokens(task: str, length: str, shortest: int,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    line = refused_up_front(capsys, *TINY, "--tasks", task, "--max-length", length)
    assert f"max_length {length} is too short for {task}" in line and f"Allowed: {shortest} up to" in line


def test_max_length_beyond_the_model_positions(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused_up_front(capsys, *TINY, "--max-length", "100000")
    assert "max_length 100000 exceeds what tiny-bert can encode" in line and "Allowed: 3 to 512" in line


def test_every_cell_is_checked_before_the_first_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short-bert"
    short.mkdir()
    (short / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 128}))
    (short / "model.safetensors").write_bytes(b"")  # a weights file: the position limit is what is refused
    line = refused_up_front(capsys, *TINY, "--models", f"tiny-bert,{short}", "--max-length", "256")
    assert f"exceeds what {short} can encode: its config.json allows 128" in line


@pytest.mark.parametrize("name", ["./no/such/checkpoint", "/no/such/checkpoint", "~/no-such-checkpoint"])
def test_missing_checkpoint_folder(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused_up_front(capsys, *TINY, "--models", name)
    assert f"no such folder: {name}" in line and "tiny-bert" in line and "minilm" in line


def test_glue_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "glue.zip"
    target.write_bytes(b"PK")
    line = refused_up_front(capsys, *TINY, "--tasks", "mrpc", "--glue-dir", str(target))
    assert f"{target} (--glue-dir / GLUE_DIR) is a file, not a folder" in line and "DIR/MRPC/train.tsv" in line


def test_help_defaults_come_from_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "seeded training subset size. Default: the preset's (seed, run_glue, nightly: all; smoke: 512, 4096 for " \
           "tiny models)" in text
    assert "1024" not in text


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_training(process: subprocess.Popen) -> list[str]:
    """Reads stderr until the cell prints its plan (training starts right after)."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "optimizer steps planned" in line:
            return lines
    raise AssertionError("training never started:\n" + "".join(lines))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_prints_one_line_and_leaves_no_scratch(sig: int, tmp_path: Path) -> None:
    process = _start(*TINY, "--epochs", "1e9", "--output", str(tmp_path))
    early = _wait_for_training(process)
    assert "2000000000 optimizer steps planned (1e+09 epochs x 2 steps)" in early[-1]  # the budget, shown up front
    mine = list(runner.scratch_root().glob(f"{process.pid}-*"))
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    [message] = [line for line in err.splitlines() if line.strip()][-1:]
    assert message == "harness: interrupted in cell 1 of 1; 0 cells finished, nothing was recorded"
    assert mine and not any(p.exists() for p in mine)
    assert not list(runner.scratch_root().glob(f"{process.pid}-*"))


def test_scratch_of_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    process = _start(*TINY, "--epochs", "1e9", "--no-save")
    _wait_for_training(process)
    process.kill()  # SIGKILL: no handler runs
    process.communicate(timeout=60)
    [left] = runner.scratch_root().glob(f"{process.pid}-trainer-*")
    assert left.is_dir()
    removed = runner.sweep_scratch()  # what the next run does before its first cell
    assert left in removed and not left.exists()


def test_records_are_world_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    previous = os.umask(0o022)
    try:
        code, _, _ = harness_run(capsys, *TINY, "--output", str(tmp_path))
    finally:
        os.umask(previous)
    assert code == 0
    [path] = results.find_records(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert results.read_record(path)["status"] == "ok"


# ------------------------------------------------------------------------------------ no false assurance (#17)

def test_a_cache_that_is_a_file_is_refused_before_the_first_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    line = refused_up_front(capsys, *TINY, "--output", str(tmp_path / "out"))
    assert "HARNESS_CACHE" in line and "is a file" in line


def test_pytest_refuses_a_record_dir_that_is_a_file_before_training(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", taken="x")
    pytester.makepyfile(test_any="def test_any():\n    pass\n")
    done = pytester.runpytest_subprocess("-p", "harness.suite.plugin", "--harness-record-dir", "taken.txt")
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    done.stderr.fnmatch_lines(["*--harness-record-dir taken.txt is a file*"])
    assert (pytester.path / "taken.txt").read_text() == "x"


def test_a_null_predictions_record_is_read_as_none_stored() -> None:
    from harness.core.record import RunRecord

    record = RunRecord.from_dict({"schema_version": 1, "run_id": "r", "cell": "c", "created_at": "t", "status": "ok",
                                  "error": None, "config": {}, "task": {}, "env": {}, "data": {}, "model": {},
                                  "predictions": None, "metrics": None})
    assert record.split_predictions("validation") == {} and record.metric("validation", "accuracy") is None


@pytest.mark.parametrize("args, expected", [
    (["--to", "transformers==4.57.6"], "same requirements"),
    (["--to", "transformers==5.24.0", "--script", "{tmp}"], "is a folder"),
    (["--to", "transformers==5.24.0", "--script", "{tmp}/bad.py"], "bad.py line 1: not valid Python"),
    (["--to", "transformers==5.24.0", "--rounds", "3"], "--rounds 8 or more"),
    (["--to", "{tmp}/nope/requirements-new.txt"], "nope/requirements-new.txt: no such file or folder"),
    (["--to", "requirements-new.txt"], "--to requirements-new.txt: no such file or folder"),
])
def test_upgrade_check_refuses_before_building_anything(args: list, expected: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.upgrade import venvs

    (tmp_path / "bad.py").write_text("def broken(:\n")
    monkeypatch.setattr(venvs, "ensure", lambda *a, **k: pytest.fail("built a venv before refusing"))
    code = main(["upgrade-check", "--from", "transformers==4.57.6", *[a.format(tmp=tmp_path) for a in args],
                 "--output", str(tmp_path / "check")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "check").exists()


@pytest.mark.parametrize("args, expected", [
    (["--seeds", "0,0,0"], "seed 0 given more than once"),
    (["--tasks", "syn-sst2,syn-sst2"], "task syn-sst2 given more than once"),
])
def test_the_same_cell_named_twice_is_refused(args: list, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in refused_up_front(capsys, *TINY[:2], *args)


@pytest.mark.parametrize("args, expected", [
    (["-k", ""], "-k is empty, which selects every test"),
    (["-k", "resume and"], "-k 'resume and' is not a pytest expression"),
    (["-k", "resume", "--marker", "training or"], "--marker 'training or' is not a pytest expression"),
    (["-k", "resume", "--bad", "4.52.1"], "--good and --bad are both 4.52.1"),
])
def test_bisect_refuses_before_any_index_query_or_venv(args: list, expected: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.upgrade import bisect, venvs

    monkeypatch.setattr(bisect, "released_versions", lambda *a: pytest.fail("queried the index before refusing"))
    monkeypatch.setattr(venvs, "ensure", lambda *a, **k: pytest.fail("built a venv before refusing"))
    argv = ["bisect", "--good", "4.52.1", "--bad", "4.57.6", *args, "--output", str(tmp_path / "b")]  # last wins
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_a_regression_task_with_too_few_eval_examples_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused_up_front(capsys, "--models", "tiny-bert", "--tasks", "syn-stsb", "--max-eval-samples", "1")
    assert "--max-eval-samples (max_eval_samples) 1 is too few for syn-stsb" in line and "at least 3" in line


@pytest.mark.parametrize("value", [float("nan"), None])
def test_a_cell_without_its_headline_metric_fails(value: float | None) -> None:
    from harness.data.tasks import get_task
    from harness.errors import HarnessError

    measured = {"test_loss": 0.5} if value is None else {"test_loss": 0.5, "test_pearson": value}
    with pytest.raises(HarnessError, match="pearson could not be computed on the validation split"):
        runner._check_primary(measured, get_task("syn-stsb"), "validation", 3)


def test_the_summary_counts_the_whole_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = harness_run(capsys, *TINY, "--output", str(tmp_path))
    [summary] = [line for line in out.splitlines() if " in the cells" in line]
    total, cells = (float(part.split(" s")[0]) for part in summary.removeprefix("1 cell in ").split(" s (", 1))
    assert code == 0 and summary.startswith("1 cell in ") and total >= cells


def _record_folder(folder: Path, record: dict) -> Path:
    path = folder / "runs" / "m" / "e" / f"{record['cell']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("case, expected", [
    ("no seed", "config.seed is not an integer"),
    ("metric a word", "metrics.validation.accuracy is 'high', not a number"),
    ("ok without metrics", "an 'ok' record without metrics"),
    ("not a record", "'created_at', 'status', 'config'"),
])
@pytest.mark.parametrize("command", ["compare", "report", "merge"])
def test_a_malformed_record_is_refused_naming_the_file(case: str, expected: str, command: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from test_baselines import make_record

    good = make_record()
    bad = {"no seed": lambda r: {**r, "config": {k: v for k, v in r["config"].items() if k != "seed"}},
           "metric a word": lambda r: {**r, "metrics": {"validation": {"accuracy": "high"}}},
           "ok without metrics": lambda r: {k: v for k, v in r.items() if k != "metrics"},
           "not a record": lambda r: {"schema_version": r["schema_version"], "accuracy": 0.9}}[case](make_record())
    if command == "merge" and case == "not a record":
        bad["run_id"] = "0" * 32  # merge carries only what names itself a record (other JSON stays behind)
    base, cand = _record_folder(tmp_path / "base", good), _record_folder(tmp_path / "cand", {**bad, "cell": "x"})
    argv = {"compare": [str(base), str(cand)], "report": [str(base), str(cand)],
            "merge": [str(base), str(cand), "--output", str(tmp_path / "merged")]}[command]
    code = main([command, *argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and expected in err and "x.json" in err
    assert not (tmp_path / "merged").exists()


def test_a_metric_neither_side_has_is_not_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_baselines import make_record

    record = make_record()
    record["metrics"]["validation"]["accuracy"] = None
    folder = _record_folder(tmp_path / "runs", record)
    code = main(["compare", str(folder), str(folder)])
    out = capsys.readouterr().out
    assert code == 0 and "the baseline has no accuracy either: nothing to judge" in out and "regressed" not in out


@pytest.fixture
def locked(tmp_path: Path) -> Path:
    """A folder no one can write in (a kernel file system when running as root)."""
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    if _writable(folder):
        folder = Path("/sys/kernel")
        if not folder.is_dir() or _writable(folder):
            pytest.skip("no read-only folder available to this user")
    return folder


@pytest.mark.parametrize("argv, given_as", [
    (["compare", "{base}", "{base}", "--output", "{locked}/v"], "--output"),
    (["compare", "{base}", "{base}", "--markdown", "{locked}/v.md"], "the folder of --markdown"),
    (["compare", "{base}", "{base}", "--markdown", "{tmp}"], "--markdown"),
    (["overhead", "--model", "tiny-bert", "--task", "syn-sst2", "--output", "{locked}/o"], "--output"),
    (["report", "{base}", "--output", "{locked}/r"], "--output"),
    (["contracts", "snapshot", "--output", "{locked}/s"], "--output"),
    (["replay", "--versions", "4.57.6", "--output", "{locked}/r"], "--output"),
    (["bisect", "--good", "4.57.6", "--bad", "5.24.0", "-k", "resume", "--output", "{locked}/b"], "--output"),
    (["run", *TINY, "--save-steps", "1", "--checkpoint-dir", "{locked}/c", "--output", "{tmp}/o"],
     "--checkpoint-dir (checkpoint_dir)"),
])
def test_every_output_is_checked_before_any_work(argv: list, given_as: str, locked: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from test_baselines import make_record

    from harness.overhead import measure as overhead
    from harness.judging import registry
    from harness.upgrade import bisect, venvs

    base = _record_folder(tmp_path / "base", make_record())
    for target, name in ((registry, "judge"), (overhead, "measure"), (venvs, "ensure"),
                         (bisect, "released_versions"), (runner, "load_task")):
        monkeypatch.setattr(target, name, lambda *a, **k: pytest.fail("worked before checking the output"))
    try:
        code = main([a.format(base=base, locked=locked, tmp=tmp_path) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and given_as in err and code == 2


@pytest.mark.parametrize("argv, expected", [
    (["bisect", "--good", "4.57.6", "--bad", "5.24.0", "-k", "resume", "--versions", "4.57.6,zzz,5.24.0"],
     "'zzz' is not a version"),
    (["bisect", "--good", "abc", "--bad", "5.24.0", "-k", "resume"], "'abc' is not a version"),
    (["replay", "--versions", "4.57.6", "--marker", "training and ("], "--marker 'training and (' is not a pytest"),
])
def test_versions_and_markers_are_checked_before_the_index_or_a_venv(argv: list, expected: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.upgrade import bisect, venvs

    monkeypatch.setattr(bisect, "released_versions", lambda *a: pytest.fail("queried the index before refusing"))
    monkeypatch.setattr(venvs, "ensure", lambda *a, **k: pytest.fail("built a venv before refusing"))
    try:
        code = main([*argv, "--output", str(tmp_path / "out")])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_an_a_a_comparison_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_baselines import make_record

    folder = _record_folder(tmp_path / "runs", make_record())
    main(["compare", str(folder), str(folder)])
    assert f"BASELINE and CANDIDATE are both {folder}: an A/A comparison" in capsys.readouterr().err


@pytest.mark.parametrize("args, expected", [
    (["--harness-baselines", "no-such-folder"], "--harness-baselines no-such-folder is not a folder"),
    (["--harness-glue-dir", "no-such-glue"], "--harness-glue-dir no-such-glue is not a folder"),
    (["--harness-baselines", "taken.txt", "--harness-update-baselines"],
     "--harness-baselines (updated by --harness-update-baselines) taken.txt is a file"),
])
def test_pytest_refuses_missing_or_unwritable_folders_before_training(args: list, expected: str,
                                                                      pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", taken="x")
    pytester.makepyfile(test_any="def test_any():\n    pass\n")
    done = pytester.runpytest_subprocess("-p", "harness.suite.plugin", *args)
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in done.stderr.str()


def test_an_old_side_newer_than_the_new_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`--from 'transformers>=4'` resolves to the newest release: checking that against an older --to is a
    downgrade, said before any stage runs."""
    from types import SimpleNamespace

    from harness.commands.upgrade_check import _check_direction
    from harness.errors import HarnessError

    old, new = SimpleNamespace(label="transformers>=4"), SimpleNamespace(label="transformers==5.24.0")
    sides = [SimpleNamespace(transformers="5.25.0"), SimpleNamespace(transformers="5.24.0")]
    with pytest.raises(HarnessError, match="resolved to transformers 5.25.0, newer than --to's 5.24.0"):
        _check_direction(sides, old, new)
    _check_direction(sides[::-1], old, new)  # an upgrade passes
    _check_direction([sides[1], sides[1]], old, new)
    assert "both sides have transformers 5.24.0" in capsys.readouterr().out


@pytest.mark.parametrize("case, expected", [
    ("no weights", "has a config.json but no weights"),
    ("corrupt config", "cannot be read as a checkpoint's config.json"),
    ("config a list", "holds a JSON list, not the object of a config.json"),
])
def test_a_broken_checkpoint_folder_is_refused_before_any_cell(case: str, expected: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text({"no weights": '{"model_type": "bert"}', "corrupt config": '{"model_type":\n',
                                         "config a list": "[]"}[case])
    if case != "no weights":
        (folder / "model.safetensors").write_bytes(b"")
    line = refused_up_front(capsys, "--models", str(folder), "--tasks", "syn-sst2", "--output", str(tmp_path / "o"))
    assert expected in line and not (tmp_path / "o" / "runs").exists()


@pytest.mark.parametrize("args, expected", [
    (["--tasks", "syn-sst2", "--source", "local", "--glue-dir", "{tmp}"], "Task 'syn-sst2' is built-in"),
    (["--tasks", "mrpc,syn-sst2", "--source", "hub"], "Cannot load task 'mrpc' from the hub"),
])
def test_a_data_source_that_cannot_serve_is_refused_before_any_cell(args: list, expected: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    line = refused_up_front(capsys, "--models", "tiny-bert", *[a.format(tmp=tmp_path) for a in args],
                            "--output", str(tmp_path / "o"))
    assert expected in line and not (tmp_path / "o" / "runs").exists()


def _mrpc(root: Path, dev_rows: list[str]) -> Path:
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    rows = [f"{i % 2}\t{i}\t{i + 1000}\tsentence number {i} .\tanother sentence {i} ." for i in range(24)]
    (root / "MRPC").mkdir(parents=True)
    (root / "MRPC" / "train.tsv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    (root / "MRPC" / "dev.tsv").write_text(header + "".join(f"{r}\n" for r in dev_rows), encoding="utf-8")
    return root


@pytest.mark.parametrize("dev_rows, expected", [
    ([], "has no rows in its validation split(s)"),
    (["1\t1\t2\tonly three"], "line 2: expected 5 tab-separated fields"),
    (["7\t1\t2\ta .\tb ."], "label '7' (column 'Quality') is not valid for mrpc"),
])
def test_bad_glue_rows_are_refused_before_any_cell(dev_rows: list, expected: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    glue = _mrpc(tmp_path / "glue", dev_rows)
    line = refused_up_front(capsys, "--models", "tiny-bert", "--tasks", "syn-sst2,mrpc", "--glue-dir", str(glue),
                            "--output", str(tmp_path / "o"))
    assert expected in line and not (tmp_path / "o" / "runs").exists()  # syn-sst2 did not train first


def test_an_interrupted_merge_says_what_it_wrote_and_leaves_nothing_half_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_baselines import make_record

    from harness.base import jsonfile

    source = tmp_path / "shard"
    for seed in range(3):
        results.write_record(make_record(seed=seed), source)
    real_write, calls = jsonfile.write, []

    def write_then_stop(path: Path, payload: dict) -> Path:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as SIGTERM arrives (cli.sigterm_as_interrupt turns it into this)
        return real_write(path, payload)

    monkeypatch.setattr(jsonfile, "write", write_then_stop)
    assert main(["merge", str(source), "--output", str(tmp_path / "merged")]) == 130
    assert "interrupted after writing 1 of 3 file(s)" in capsys.readouterr().err
    assert len(results.find_records(tmp_path / "merged")) == 1
    assert not list((tmp_path / "merged").rglob("*.tmp"))
    monkeypatch.setattr(jsonfile, "write", real_write)
    assert main(["merge", str(source), "--output", str(tmp_path / "merged")]) == 0  # the same merge finishes it
    assert len(results.find_records(tmp_path / "merged")) == 3


def test_sigterm_unwinds_like_ctrl_c() -> None:
    from harness.cli import sigterm_as_interrupt

    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        import time

        time.sleep(5)  # the handler raises as soon as the signal arrives


def test_a_cell_run_twice_in_one_environment_is_noted_by_merge(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from test_baselines import make_record

    first, second = make_record(accuracy=0.4), make_record(accuracy=0.9)
    second["run_id"], second["created_at"] = "f" * 32, "2026-01-02T00:00:00+00:00"
    results.write_record(first, tmp_path / "a")
    results.write_record(second, tmp_path / "b")
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "m")]) == 0
    assert "1 cell(s) ran more than once in one environment: syn-sst2-tiny-bert-s0 (2 runs)" in \
        capsys.readouterr().err


def test_a_task_file_with_one_class_is_refused_before_any_cell(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from test_user_tasks import TOML

    (tmp_path / "reviews.toml").write_text(TOML)
    rows = "text,stars_label\n" + "".join(f"review number {i},positive\n" for i in range(12))
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "dev.csv").write_text(rows)
    line = refused_up_front(capsys, "--models", "tiny-bert", "--tasks", str(tmp_path / "reviews.toml"),
                            "--output", str(tmp_path / "o"))
    assert "every row of its train split has the label 1" in line and "at least two classes" in line


def test_a_config_that_is_a_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused_up_front(capsys, "--config", str(tmp_path))
    assert f"--config {tmp_path} is a folder, not a file (is it {tmp_path / 'harness.toml'}" in line


def test_upgrade_check_refuses_cells_it_cannot_serve_before_any_venv(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.upgrade import venvs

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(venvs, "ensure", lambda *a, **k: pytest.fail("built a venv before refusing"))
    code = main(["upgrade-check", "--from", "transformers==4.57.6", "--to", "transformers==5.24.0", "--models",
                 "tiny-bert", "--tasks", "mrpc", "--stages", "quality", "--output", str(tmp_path / "check")])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot load task 'mrpc' from the hub" in err and "Traceback" not in err


def test_cells_failing_on_both_sides_cannot_tell_not_ok() -> None:
    from test_baselines import make_record

    from harness.core.record import RunRecord
    from harness.upgrade import check, report

    failed = RunRecord.from_dict({**make_record(), "status": "failed", "error": "no data", "metrics": {}})
    quality = check.quality_section([([failed], []), ([failed], [])], check.CheckOptions())
    parity = check.trajectory_section([([failed], []), ([failed], [])])
    assert quality.status == parity.status == check.ERROR
    assert quality.summary.startswith("cannot tell: no cell could be judged") and "no data" in quality.notes[0]
    result = check.Report(sides=[{"title": "a"}, {"title": "b"}], options={}, sections=[parity, quality])
    assert report.exit_status(result) == 3 and report.headline(result).endswith(
        "COULD NOT TELL (trajectory, quality)")


@pytest.mark.parametrize("uv_said, advice", [
    ("error: Failed to initialize cache at `/tmp/x`\n  Caused by: failed to create directory: File exists (os "
     "error 17).", "point UV_CACHE_DIR at a writable folder"),
    ("  x No solution found when resolving dependencies:\n  Because there is no version of torch==2.99.0 and you "
     "require torch==2.99.0, we can conclude that your requirements are unsatisfiable.",
     "names a version or package the index does not have"),
])
def test_a_failed_environment_build_says_what_to_fix(uv_said: str, advice: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import HarnessError
    from harness.upgrade import venvs

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(venvs, "uv_binary", lambda: "uv")
    monkeypatch.setattr(venvs.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 2, "", uv_said))
    with pytest.raises(HarnessError) as err:
        venvs.ensure(("transformers==5.24.0", "torch==2.99.0"))
    message = str(err.value)
    assert advice in message and ".." not in message and "Check that the versions exist" not in message
    assert not list((tmp_path / "venvs").glob("*"))  # no half-built venv left behind


def test_a_task_file_row_with_blank_text_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_user_tasks import TOML

    (tmp_path / "reviews.toml").write_text(TOML)
    rows = "text,stars_label\n" + "".join(f"review number {i},{['negative', 'positive'][i % 2]}\n" for i in range(12))
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "dev.csv").write_text(rows + " ,positive\n")
    line = refused_up_front(capsys, "--models", "tiny-bert", "--tasks", str(tmp_path / "reviews.toml"),
                            "--output", str(tmp_path / "o"))
    assert "data row 13: text column 'text' is empty (null or blank)" in line


def test_a_contracts_diff_of_one_snapshot_with_itself_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts", "diff", "4.57.6", "4.57.6"]) == 0
    assert "A and B are the same snapshot (4.57.6): nothing can differ" in capsys.readouterr().err


def test_a_glue_copy_with_other_row_counts_than_the_original_is_named(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from harness.data.loading import load_task
    from harness.data.tasks import get_task

    glue = _mrpc(tmp_path / "glue", [f"{i % 2}\t{i}\t{i + 1}\ta {i} .\tb {i} ." for i in range(78)])
    data = load_task(get_task("mrpc"), source="local", glue_dir=glue)
    err = capsys.readouterr().err
    assert f"{glue / 'MRPC' / 'dev.tsv'} has 78 rows, the original GLUE MRPC/dev.tsv has 408" in err
    assert data.provenance["files"]["MRPC/dev.tsv"]["official_rows"] == 408


def test_a_stage_that_cannot_run_says_why_without_internal_names(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import HarnessError
    from harness.upgrade import check

    def broken(*_: object) -> list:
        raise HarnessError("the course walkthrough failed on the to side: no GPU")

    monkeypatch.setattr(check.StageRun, "tier_runs", broken)
    result = check.run_check([], check.CheckOptions(stages=("trajectory",)), tmp_path, progress=lambda line: None)
    [section] = result.sections
    assert section.status == check.ERROR and section.summary == \
        "could not run: the course walkthrough failed on the to side: no GPU"


def test_compare_says_when_settings_differ_from_the_baselines(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from test_baselines import make_record

    base = _record_folder(tmp_path / "base", make_record())
    _record_folder(base, make_record(task="syn-mrpc"))
    cand = _record_folder(tmp_path / "cand", make_record())  # the same settings: judged
    _record_folder(cand, make_record(task="syn-mrpc", lr=2e-3))  # another learning rate: not comparable
    code = main(["compare", str(base), str(cand)])
    err = capsys.readouterr().err
    assert code == 0 and "because the candidate ran with other settings than its baseline" in err
    assert "`harness run --tier smoke`" in err and "learning_rate" in err


def test_a_disk_that_fills_while_compare_writes_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from test_baselines import make_record

    from harness.reporting import render

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "v" / "verdicts.json"))

    monkeypatch.setattr(render, "write_tables", full)
    folder = _record_folder(tmp_path / "runs", make_record())
    code = main(["compare", str(folder), str(folder), "--output", str(tmp_path / "v")])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err and "unchanged" in captured.out  # the table was printed
    assert "the verdicts (printed above) could not be written: No space left on device" in captured.err
