"""End-to-end cells through the real Trainer on tiny models: record contents, determinism, caching, errors."""

import math

import pytest
import torch
from transformers import TrainerCallback

from harness import runner
from harness.errors import HarnessError, TrainingError, UnknownNameError
from harness.record import SCHEMA_VERSION

FAST = {"epochs": 1.0, "max_train_samples": 256, "max_eval_samples": 96}


@pytest.fixture(scope="module")
def pair_record() -> dict:
    return runner.run(runner.make_config("tiny-bert", "syn-mrpc", seed=3, **FAST)).to_dict()


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
    assert timings["train_samples_per_second"] > 0 and timings["train_tokens_per_second"] > 0
    assert timings["peak_rss_bytes"] > 0


def test_same_cell_twice_is_identical_and_reuses_tokenization(pair_record: dict) -> None:
    again = runner.run(runner.make_config("tiny-bert", "syn-mrpc", seed=3, **FAST)).to_dict()
    assert again["metrics"]["validation"]["accuracy"] == pair_record["metrics"]["validation"]["accuracy"]
    assert again["metrics"]["validation"]["loss"] == pair_record["metrics"]["validation"]["loss"]
    assert again["predictions"] == pair_record["predictions"]
    assert again["train_loss"] == pair_record["train_loss"]
    assert again["data"]["tokenization_cache_hit"] is True
    assert again["data"]["tokenization_cache_key"] == pair_record["data"]["tokenization_cache_key"]


def test_another_seed_changes_the_run(pair_record: dict) -> None:
    other = runner.run(runner.make_config("tiny-bert", "syn-mrpc", seed=4, **FAST)).to_dict()
    assert other["train_loss"] != pair_record["train_loss"]


def test_regression_task_records_float_predictions() -> None:
    rec = runner.run(runner.make_config("tiny-roberta", "syn-stsb", **FAST)).to_dict()
    contract = rec["predict_contract"]["validation"]
    assert contract["predictions"]["shape"] == [96, 1] and contract["label_ids"]["dtype"] == "float32"
    assert set(rec["metrics"]["validation"]) >= {"pearson", "spearmanr", "combined_score"}
    assert all(isinstance(v, float) for v in rec["predictions"]["validation"]["predictions"])


def test_tiny_model_learns_and_a_frozen_loop_stays_at_chance() -> None:
    """A working loop beats chance clearly; a broken one (no parameter updates) does not."""
    budget = {"epochs": 3.0, "max_train_samples": 2048, "max_eval_samples": 256}
    learned = runner.run(runner.make_config("tiny-bert", "syn-sst2", **budget)).primary()
    frozen = runner.run(runner.make_config("tiny-bert", "syn-sst2", learning_rate=1e-12, **budget)).primary()
    assert learned > 0.75
    assert frozen < 0.62


class _PoisonWeights(TrainerCallback):
    """Turns the classifier weights into NaN after the first step, as a diverged update would."""

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        if state.global_step == 1:
            with torch.no_grad():
                model.classifier.weight.fill_(float("nan"))


def test_non_finite_loss_stops_with_advice() -> None:
    config = runner.make_config("tiny-bert", "syn-stsb", epochs=1.0, max_train_samples=128, max_eval_samples=32)
    with pytest.raises(TrainingError, match="Lower the learning rate"):
        runner.run(config, callbacks=[_PoisonWeights()])


def test_presets_apply_and_overrides_win() -> None:
    seed = runner.make_config("minilm", "mrpc", preset="seed")
    assert (seed.train_batch_size, seed.epochs, seed.learning_rate, seed.max_length) == (8, 3.0, 5e-5, None)
    glue = runner.make_config("minilm", "mrpc", preset="run_glue", learning_rate=3e-5)
    assert (glue.train_batch_size, glue.learning_rate, glue.max_length) == (32, 3e-5, 128)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"precision": "fp8"}, "Unknown precision 'fp8'; allowed: fp32, fp16, bf16"),
    ({"device": "tpu"}, "Unknown device 'tpu'"),
    ({"train_batch_size": 0}, "train_batch_size must be a positive integer"),
    ({"epochs": -1.0}, "epochs must be positive"),
])
def test_bad_configs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        runner.make_config("tiny-bert", "syn-sst2", **overrides)


def test_unknown_preset() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: smoke"):
        runner.make_config("tiny-bert", "syn-sst2", preset="smok")


def test_fp16_on_cpu_is_refused_with_alternatives() -> None:
    with pytest.raises(HarnessError, match="fp16 needs a CUDA device; use bf16 or fp32"):
        runner.run(runner.make_config("tiny-bert", "syn-sst2", precision="fp16", device="cpu"))
