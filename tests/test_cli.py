"""The command line: listings, validation with did-you-mean, the run plan (--tier), one real run, import weight."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.suite import matrix
from harness.cli import build_parser, main
from harness.commands import run as run_command
from harness.store import results


def test_tasks_and_models_listings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "mrpc" in out and "syn-stsb" in out and "mnli_mismatched" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "tiny-deberta-v2" in out and "google-bert/bert-base-cased" in out


def test_env_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    assert "transformers" in json.loads(capsys.readouterr().out)["packages"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "--tasks", "mrcp"], "Did you mean: mrpc"),
    (["run", "--models", "tiny-bret"], "Did you mean: tiny-bert"),
    (["run", "--seeds", "a,b"], "expected non-negative integer seeds up to 4294967295 separated by commas"),
    (["run", "--max-train-samples", "0"], "expected a positive integer, got '0'"),
    (["run", "--preset", "smok"], "Unknown preset 'smok'. Did you mean: smoke?"),
    (["run", "--tier", "smok"], "Unknown tier 'smok'. Did you mean: smoke?"),
    (["run", "--threads", "-1"], "expected a thread count (0 = torch's default), got '-1'"),
    (["run", "--lr-scheduler-type", "cosin"], "invalid choice: 'cosin'"),
    (["run", "--label-smoothing-factor", "1"], "expected a number from 0 up to (not including) 1, got '1'"),
    (["run", "--warmup-steps", "-2"], "expected a non-negative integer, got '-2'"),
    (["run", "--sampler-seed", "x"], "expected a non-negative integer seed up to 4294967295, got 'x'"),
])
def test_bad_arguments_exit_2_with_the_reason(argv: list, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_run_prints_a_table_and_writes_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--models", "tiny-albert", "--tasks", "syn-sst2,syn-stsb", "--seeds", "0", "--epochs", "1",
                 "--max-train-samples", "128", "--max-eval-samples", "64", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "[2/2] syn-stsb-tiny-albert-s0" in out
    assert "accuracy" in out and "pearson" in out and "train_samples_s" in out
    stored = results.load_records(results.find_records(tmp_path))
    assert sorted(r["cell"] for r in stored) == ["syn-sst2-tiny-albert-s0", "syn-stsb-tiny-albert-s0"]


def test_missing_glue_dir_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--models", "tiny-bert", "--tasks", "mrpc", "--glue-dir", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and "[1/" not in captured.out
    assert f"GLUE data folder {tmp_path / 'nowhere'} (--glue-dir / GLUE_DIR) does not exist" in captured.err
    assert not results.find_records(tmp_path / "out")


def test_missing_task_folder_is_refused_with_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "SST-2").mkdir()
    assert main(["run", "--models", "tiny-bert", "--tasks", "mrpc", "--glue-dir", str(tmp_path), "--no-save"]) == 2
    assert "has no MRPC/ folder for task mrpc (folders present: SST-2)" in capsys.readouterr().err


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_tier_plans_exactly_the_suite_matrix() -> None:
    assert run_command.plan(_args("--tier", "smoke")) == [c.config for c in matrix.cells("smoke")]
    narrowed = run_command.plan(_args("--tier", "smoke", "--models", "tiny-bert", "--epochs", "1"))
    expected = matrix.cells("smoke", matrix.Selection(models=("tiny-bert",), overrides={"epochs": 1.0}))
    assert narrowed == [c.config for c in expected]
    assert {c.evals_per_epoch for c in narrowed} == {2}  # the tier's own setting comes along


def test_without_a_tier_the_default_matrix_and_preset() -> None:
    configs = run_command.plan(_args("--tasks", "syn-sst2", "--seeds", "0,1"))
    assert [c.cell_id for c in configs] == [f"syn-sst2-{m}-s{s}" for m in run_command.DEFAULT_MODELS for s in (0, 1)]
    assert {c.preset for c in configs} == {"smoke"} and {c.evals_per_epoch for c in configs} == {1}


def test_glue_tier_without_glue_data_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert main(["run", "--tier", "glue"]) == 2
    assert "tier glue reads GLUE data: pass --glue-dir DIR or set GLUE_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["tasks"], ["models"]])
def test_help_and_listings_do_not_import_torch(argv: list) -> None:
    code = ("import sys\nfrom harness.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stderr, done.stderr


def test_trainer_settings_reach_the_configs() -> None:
    configs = run_command.plan(_args(
        "--models", "tiny-bert", "--tasks", "syn-sst2", "--gradient-accumulation-steps", "2", "--lr-scheduler-type",
        "cosine", "--warmup-steps", "3", "--optim", "sgd", "--max-grad-norm", "0", "--weight-decay", "0.1",
        "--label-smoothing-factor", "0.1", "--load-dtype", "bfloat16", "--sampler-seed", "5", "--group-by-length",
        "--eval-accumulation-steps", "4", "--trainer-class", "harness.core.trainers:ExplicitLossTrainer",
        "--trajectory-steps", "0"))
    (config,) = configs
    assert (config.gradient_accumulation_steps, config.lr_scheduler_type, config.optim) == (2, "cosine", "sgd")
    assert (config.warmup_steps, config.warmup_ratio, config.max_grad_norm, config.weight_decay) == (3, 0.0, 0.0, 0.1)
    assert (config.label_smoothing_factor, config.load_dtype, config.sampler_seed) == (0.1, "bfloat16", 5)
    assert (config.group_by_length, config.eval_accumulation_steps, config.trajectory_steps) == (True, 4, 0)
    assert config.trainer_class == "harness.core.trainers:ExplicitLossTrainer"
    untouched = run_command.plan(_args("--models", "tiny-bert", "--tasks", "syn-sst2"))[0]
    assert (untouched.group_by_length, untouched.warmup_ratio, untouched.optim) == (False, 0.1, None)


def test_warmup_steps_replace_a_tier_ratio() -> None:
    configs = run_command.plan(_args("--tier", "smoke", "--models", "tiny-bert", "--warmup-steps", "5"))
    assert {(c.warmup_steps, c.warmup_ratio) for c in configs} == {(5, 0.0)}


def test_a_bad_trainer_class_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--models", "tiny-bert", "--tasks", "syn-sst2", "--trainer-class",
                 "harness.core.trainers:resolve", "--output", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "[1/" not in captured.out
    assert "--trainer-class (trainer_class) harness.core.trainers:resolve is" in captured.err and "not a subclass" in captured.err


def test_every_setting_option_says_its_default() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    helps = {action.dest: action.help for action in sub._actions}
    for name in run_command.OVERRIDES:
        assert "Default: " in helps[name], name


@pytest.mark.parametrize(("text", "expected"), [
    ("group_by_length=true", ("group_by_length", True)), ("group-by-length=off", ("group_by_length", False)),
    ("trajectory_steps=0", ("trajectory_steps", 0)), ("optim=sgd", ("optim", "sgd")),
    ("sampler_seed=none", ("sampler_seed", None)), ("max_grad_norm=0.5", ("max_grad_norm", 0.5)),
])
def test_override_types_the_new_fields(text: str, expected: tuple) -> None:
    from harness.suite import options

    assert options.override(text) == expected
