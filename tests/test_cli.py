"""The command line: listings, validation with did-you-mean, and one real run that writes a record."""

import json
from pathlib import Path

import pytest

from harness import results
from harness.cli import main


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
    (["run", "--seeds", "a,b"], "seeds must be integers"),
    (["run", "--max-train-samples", "0"], "expected a positive integer, got '0'"),
    (["run", "--preset", "fast"], "invalid choice: 'fast'"),
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


def test_missing_glue_data_fails_the_cell_and_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--models", "tiny-bert", "--tasks", "mrpc", "--glue-dir", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "out")])
    captured = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in captured and str(tmp_path / "nowhere") in captured
    [record] = results.load_records(results.find_records(tmp_path / "out"))
    assert record["status"] == "failed" and "nowhere" in record["error"]
