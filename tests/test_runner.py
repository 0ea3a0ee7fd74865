"""End-to-end cells through the real Trainer on tiny models: record contents, determinism, caching, errors."""

import io
import math
import os
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerCallback

from harness.core.config import make_config
from harness.core import runner
from harness.errors import HarnessError, TrainingError, UnknownNameError
from harness.core.record import SCHEMA_VERSION

FAST = {"epochs": 1.0, "max_train_samples": 256, "max_eval_samples": 96}


@pytest.fixture(scope="module")
def pair_record() -> dict:
    return runner.run(make_config("tiny-bert", "syn-mrpc", seed=3, **FAST)).to_dict()


def test_record_has_full_provenance(pair_record: dict) -> None:
    rec = pair_record
    assert rec["schema_version"] == SCHEMA_VERSION and rec["status"] == "ok"
    assert rec["cell"] == "syn-mrpc-tiny-bert-s3"
    assert rec["config"]["preset"] == "smoke" and rec["config"]["learning_rate"] == 1e-3  # tiny override
    assert rec["env"]["packages"]["transformers"] and rec["env"]["device_class"].startswith("cpu")
    assert rec["data"]["source"] == "builtin" and rec["data"]["rows"] == {"train": 256, "validation": 96}
    assert rec["model"]["weights_sha256"] and rec["model"]["architecture"] == "BertForSequenceClassification"
    assert rec["task"]["primary_metric"] == "accuracy"


def test_record_has_metrics_predictions_and_timings(pair_record: dict) -> None:
    rec = pair_record
    final = rec["metrics"]["validation"]
    assert set(final) >= {"accuracy", "f1", "combined_score", "loss", "runtime", "samples_per_second"}
    assert 0.0 <= final["accuracy"] <= 1.0
    preds = rec["predictions"]["validation"]
    assert len(preds["predictions"]) == len(preds["labels"]) == len(preds["idx"]) == 96
    recomputed = sum(p == y for p, y in zip(preds["predictions"], preds["labels"])) / 96
    assert final["accuracy"] == pytest.approx(recomputed)
    assert len(rec["epochs"]) == 1 and "accuracy" in rec["epochs"][0]["validation"]
    contract = rec["predict_contract"]["validation"]
    assert contract["predictions"] == {"shape": [96, 2], "dtype": "float32"}
    assert contract["label_ids"] == {"shape": [96], "dtype": "int64"}
    timings = rec["timings"]
    assert timings["train_steps"] == len(timings["train_step_seconds"]) == math.ceil(256 / 32)
    # every step is within the default 64 traced; the regular loss log keeps its cadence (every 2 steps here)
    assert [t["step"] for t in rec["trajectory"]] == list(range(1, 9))
    assert [e["step"] for e in rec["train_loss"]] == [2, 4, 6, 8]
    assert rec["config"]["resolved_optim"] in ("adamw_torch", "adamw_torch_fused")  # TrainingArguments' default
    assert rec["config"]["resolved_mixed_precision"] == "no" and rec["model"]["dtype"] == "float32"
    assert timings["train_samples_per_second"] > 0 and timings["train_tokens_per_second"] > 0
    assert timings["peak_rss_bytes"] > 0
    machine = timings["machine"]  # the speed verdict's witness: machine speed around train(), others' CPU use
    assert len(machine["reference_seconds"]) == 2 and all(s > 0 for s in machine["reference_seconds"])
    assert machine["busy_cores"] is None or machine["busy_cores"] >= 0


def test_same_cell_twice_is_identical_and_reuses_tokenization(pair_record: dict) -> None:
    again = runner.run(make_config("tiny-bert", "syn-mrpc", seed=3, **FAST)).to_dict()
    assert again["metrics"]["validation"]["accuracy"] == pair_record["metrics"]["validation"]["accuracy"]
    assert again["metrics"]["validation"]["loss"] == pair_record["metrics"]["validation"]["loss"]
    assert again["predictions"] == pair_record["predictions"]
    assert again["train_loss"] == pair_record["train_loss"]
    assert again["data"]["tokenization_cache_hit"] is True
    assert again["data"]["tokenization_cache_key"] == pair_record["data"]["tokenization_cache_key"]


def test_another_seed_changes_the_run(pair_record: dict) -> None:
    other = runner.run(make_config("tiny-bert", "syn-mrpc", seed=4, **FAST)).to_dict()
    assert other["train_loss"] != pair_record["train_loss"]


def test_regression_task_records_float_predictions() -> None:
    rec = runner.run(make_config("tiny-roberta", "syn-stsb", **FAST)).to_dict()
    contract = rec["predict_contract"]["validation"]
    assert contract["predictions"]["shape"] == [96, 1] and contract["label_ids"]["dtype"] == "float32"
    assert set(rec["metrics"]["validation"]) >= {"pearson", "spearmanr", "combined_score"}
    assert all(isinstance(v, float) for v in rec["predictions"]["validation"]["predictions"])


def test_tiny_model_learns_and_a_frozen_loop_stays_at_chance() -> None:
    """A working loop beats chance clearly; a broken one (no parameter updates) does not."""
    budget = {"epochs": 3.0, "max_train_samples": 2048, "max_eval_samples": 256}
    learned = runner.run(make_config("tiny-bert", "syn-sst2", **budget)).primary()
    frozen = runner.run(make_config("tiny-bert", "syn-sst2", learning_rate=1e-12, **budget)).primary()
    assert learned > 0.75
    assert frozen < 0.62


class _PoisonWeights(TrainerCallback):
    """Turns the classifier weights into NaN after the first step, as a diverged update would."""

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        if state.global_step == 1:
            with torch.no_grad():
                model.classifier.weight.fill_(float("nan"))


def test_non_finite_loss_stops_with_advice() -> None:
    config = make_config("tiny-bert", "syn-stsb", epochs=1.0, max_train_samples=128, max_eval_samples=32)
    with pytest.raises(TrainingError, match="Lower the learning rate"):
        runner.run(config, callbacks=[_PoisonWeights()])


def test_presets_apply_and_overrides_win() -> None:
    seed = make_config("minilm", "mrpc", preset="seed")
    assert (seed.train_batch_size, seed.epochs, seed.learning_rate, seed.max_length) == (8, 3.0, 5e-5, None)
    glue = make_config("minilm", "mrpc", preset="run_glue", learning_rate=3e-5)
    assert (glue.train_batch_size, glue.learning_rate, glue.max_length) == (32, 3e-5, 128)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"precision": "fp8"}, "Unknown precision 'fp8'; allowed: fp32, fp16, bf16"),
    ({"device": "tpu"}, "Unknown device 'tpu'"),
    ({"train_batch_size": 0}, "train_batch_size must be a positive integer"),
    ({"epochs": -1.0}, "epochs must be positive"),
    ({"epochs": float("inf")}, "epochs must be positive and finite, got inf"),
    ({"learning_rate": float("nan")}, "learning_rate must be positive and finite, got nan"),
    ({"warmup_ratio": 1.5}, r"warmup_ratio must be from 0 up to \(not including\) 1"),
    ({"seed": 2**32}, "seed must be an integer from 0 to 4294967295"),
    ({"max_length": 2}, "max_length 2 is too short for syn-sst2"),
])
def test_bad_configs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        make_config("tiny-bert", "syn-sst2", **overrides)


def test_unknown_preset() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: smoke"):
        make_config("tiny-bert", "syn-sst2", preset="smok")


def test_fp16_on_cpu_is_refused_with_alternatives() -> None:
    with pytest.raises(HarnessError, match="fp16 needs a CUDA device; use bf16 or fp32"):
        runner.run(make_config("tiny-bert", "syn-sst2", precision="fp16", device="cpu"))


def test_run_cell_returns_a_failed_record_instead_of_raising() -> None:
    config = make_config("tiny-bert", "syn-stsb", epochs=1.0, max_train_samples=128, max_eval_samples=32)
    record = runner.run_cell(config, callbacks=[_PoisonWeights()])
    assert isinstance(record, runner.RunRecord) and record.status == "failed"
    assert "Lower the learning rate" in record.error and record.cell == "syn-stsb-tiny-bert-s0"
    assert record.config["learning_rate"] == 1e-3 and record.task["primary_metric"] == "pearson"
    assert record.env["packages"]["transformers"] and record.metrics == {}


def test_failed_record_is_a_run_record_with_the_config() -> None:
    config = make_config("tiny-bert", "syn-sst2")
    record = runner.failed_record(config, HarnessError("boom"))
    assert (record.status, record.error, record.cell) == ("failed", "boom", "syn-sst2-tiny-bert-s0")
    assert record.to_dict()["config"]["model"] == "tiny-bert"


@pytest.mark.parametrize(("losses", "diverged"), [
    ([0.7, 0.5, 2.1], None),  # overfitting: 3x the chance loss is not divergence
    ([0.7, 0.69, 7.2], 2),  # 10x the larger of chance (ln 2) and the first eval
    ([0.7, float("nan")], 1),
    ([float("inf")], 0),
    ([5.0, 20.0], None),  # far above chance from the start: judged against the first eval
    ([12.0], 0),  # the first eval alone, over 10x chance
])
def test_divergence_rule(losses: list, diverged: int | None) -> None:
    guard = runner.DivergenceGuard(make_config("tiny-bert", "syn-sst2"), chance=math.log(2))
    for index, loss in enumerate(losses):
        if index == diverged:
            with pytest.raises(TrainingError, match=r"Training diverged in syn-sst2-tiny-bert-s0: the eval loss was"):
                guard.check(loss, "here")
            return
        guard.check(loss, "here")
    assert diverged is None


def test_chance_loss_is_ln_k_or_the_label_variance() -> None:
    from harness.data.tasks import get_task

    assert runner.chance_loss(get_task("mnli"), []) == pytest.approx(math.log(3))
    assert runner.chance_loss(get_task("stsb"), [1.0, 3.0]) == pytest.approx(1.0)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _drive(progress: runner.Progress, steps: int) -> None:
    args = SimpleNamespace(num_train_epochs=2.0)
    state = SimpleNamespace(max_steps=steps, global_step=0, epoch=0.0)
    progress.on_train_begin(args, state, None)
    for step in range(1, steps + 1):
        state.global_step, state.epoch = step, 2.0 * step / steps
        progress.shown -= 100  # as if enough time had passed to show every step
        progress.on_step_end(args, state, None)
        if step == steps // 2:
            progress.on_evaluate(args, state, None, metrics={"eval_loss": 0.5, "eval_accuracy": 0.8125})
    progress.finish()


def test_progress_updates_one_line_on_a_terminal() -> None:
    stream = _Stream(tty=True)
    _drive(runner.Progress("accuracy", stream), 4)
    text = stream.getvalue()
    assert text.startswith("    4 optimizer steps planned (2 epochs x 2 steps)\n")
    assert text.count("\n") == 1 and "\r    step 4/4 (100%)" in text and "eval accuracy 0.812 at epoch 1.00" in text
    assert text.endswith("\r")  # the line is cleared for the cell's summary


def test_progress_off_a_terminal_is_plain_lines() -> None:
    stream = _Stream(tty=False)
    _drive(runner.Progress("accuracy", stream), 3)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert lines[0] == "    3 optimizer steps planned (2 epochs x 2 steps)"
    assert lines[-1].startswith("    step 3/3 (100%)") and "ETA 0s" in lines[-1]


def test_scratch_folders_are_removed_and_dead_ones_swept() -> None:
    import subprocess
    import sys

    with runner.scratch_dir("trainer") as scratch:
        assert scratch.parent == runner.scratch_root() and scratch.name.startswith(f"{os.getpid()}-trainer-")
    assert not scratch.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = runner.scratch_root() / f"{int(dead.stdout)}-trainer-x"
    stale.mkdir(parents=True)
    assert runner.sweep_scratch() == [stale] and not stale.exists()
