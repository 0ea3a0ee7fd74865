"""Trainer settings: RunConfig -> TrainingArguments on the installed version, refusals, and tiny real runs."""

import math
from pathlib import Path

import pytest
import torch
import transformers

from harness.core import compat, models, runner, trainers
from harness.core.config import check_inputs, make_config
from harness.data.tasks import get_task
from harness.errors import HarnessError

TINY = {"epochs": 1.0, "max_train_samples": 256, "max_eval_samples": 64}
# where group_by_length goes: its own flag, or (later 5.x) one value of train_sampling_strategy
_SAMPLING = ("group_by_length" if hasattr(transformers.TrainingArguments, "group_by_length")
             else "train_sampling_strategy")


def _args(tmp_path: Path, **overrides):
    config = make_config("tiny-bert", "syn-sst2", **overrides)
    return runner.training_arguments(config, "cpu", 256, tmp_path)


def _run(**overrides) -> runner.RunRecord:
    return runner.run(make_config("tiny-bert", "syn-sst2", **{**TINY, **overrides}))


# ---------------------------------------------------------------------------------- settings -> TrainingArguments

def test_defaults_are_the_training_arguments_defaults(tmp_path: Path) -> None:
    """Existing baselines stay comparable: the new settings default to what TrainingArguments did without them."""
    ours, theirs = _args(tmp_path), transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    for name in ("optim", "lr_scheduler_type", "max_grad_norm", "label_smoothing_factor",
                 "gradient_accumulation_steps", "data_seed", "eval_accumulation_steps",
                 _SAMPLING):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.save_strategy, ours.bf16) == ("no", False)


def test_each_setting_reaches_training_arguments(tmp_path: Path) -> None:
    args = _args(tmp_path, gradient_accumulation_steps=4, lr_scheduler_type="cosine", warmup_steps=7,
                 optim="sgd", max_grad_norm=0.5, weight_decay=0.2, label_smoothing_factor=0.1, sampler_seed=11,
                 group_by_length=True, eval_accumulation_steps=3, precision="bf16", save_steps=5,
                 checkpoint_dir=str(tmp_path / "ckpt"))
    assert args.gradient_accumulation_steps == 4 and args.lr_scheduler_type == "cosine"
    assert args.warmup_steps == 7 and args.optim == "sgd" and args.max_grad_norm == 0.5
    assert args.weight_decay == 0.2 and args.label_smoothing_factor == 0.1 and args.data_seed == 11
    assert args.eval_accumulation_steps == 3 and args.bf16 and args.use_cpu
    assert (args.save_strategy, args.save_steps, args.output_dir) == ("steps", 5, str(tmp_path / "ckpt"))
    assert getattr(args, _SAMPLING) in (True, "group_by_length")


def test_warmup_ratio_or_steps(tmp_path: Path) -> None:
    ratio = _args(tmp_path, warmup_ratio=0.25)
    assert (ratio.warmup_steps, ratio.get_warmup_steps(100)) == ((0.25, 25) if compat.IS_V5 else (0, 25))
    steps = _args(tmp_path, warmup_steps=5)  # replaces the smoke preset's ratio
    assert steps.get_warmup_steps(100) == 5
    assert make_config("tiny-bert", "syn-sst2", warmup_steps=5).warmup_ratio == 0.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "auto"])
def test_load_dtype_gives_the_parameter_dtype(dtype: str) -> None:
    loaded = models.load(models.get_model("tiny-bert"), get_task("syn-sst2"), dtype=dtype)
    expected = torch.float32 if dtype == "auto" else getattr(torch, dtype)  # the tiny checkpoint is float32
    assert {p.dtype for p in loaded.model.parameters()} == {expected}
    assert loaded.provenance["dtype"] == str(expected).removeprefix("torch.")


def test_load_dtype_keyword_per_version() -> None:
    keyword = "dtype" if compat.TRANSFORMERS_VERSION >= compat.Version("4.56") else "torch_dtype"
    assert compat.load_dtype_arguments("bfloat16") == {keyword: torch.bfloat16}
    assert compat.load_dtype_arguments("auto") == {keyword: "auto"}


# ---------------------------------------------------------------------------------- refusals, before training

@pytest.mark.parametrize(("overrides", "message"), [
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be a positive integer, got 0"),
    ({"lr_scheduler_type": "cosine_annealing"}, "Unknown lr_scheduler_type 'cosine_annealing'; allowed: linear, "),
    ({"warmup_ratio": 0.1, "warmup_steps": 5}, "warmup_ratio 0.1 and warmup_steps 5 are both set"),
    ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0, got -1"),
    ({"optim": "adamw_hf"}, "Unknown optim 'adamw_hf'; allowed: adamw_torch, adamw_torch_fused, adafactor"),
    ({"max_grad_norm": -1.0}, r"max_grad_norm must be finite and >= 0 \(0 disables clipping\), got -1.0"),
    ({"max_grad_norm": float("inf")}, "max_grad_norm must be finite"),
    ({"label_smoothing_factor": 1.0}, r"label_smoothing_factor must be from 0 up to \(not including\) 1, got 1.0"),
    ({"load_dtype": "fp16"}, "Unknown load_dtype 'fp16'; allowed: auto, float32, bfloat16, float16"),
    ({"sampler_seed": -3}, "sampler_seed must be an integer from 0 to 4294967295, got -3"),
    ({"group_by_length": "yes"}, "group_by_length must be true or false, got 'yes'"),
    ({"eval_accumulation_steps": 0}, "eval_accumulation_steps must be a positive integer, got 0"),
    ({"save_steps": 10}, "--save-steps and --checkpoint-dir \\(save_steps, checkpoint_dir\\) go together"),
    ({"checkpoint_dir": "/tmp/x"}, "--save-steps and --checkpoint-dir \\(save_steps, checkpoint_dir\\) go together"),
    ({"trainer_class": "harness.core.trainers.ExplicitLossTrainer"}, "must be 'package.module:ClassName'"),
    ({"trajectory_steps": -1}, "trajectory_steps must be an integer >= 0, got -1"),
    ({"precision": "fp16", "load_dtype": "float16"}, "precision fp16 with load_dtype float16"),
])
def test_bad_values_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        make_config("tiny-bert", "syn-sst2", **overrides)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"resume_from_checkpoint": "{tmp}/nowhere"}, "\\(resume_from_checkpoint\\) {tmp}/nowhere does not exist"),
    ({"resume_from_checkpoint": "{tmp}"}, "is not a Trainer checkpoint \\(no trainer_state.json\\)"),
    ({"save_steps": 2, "checkpoint_dir": "{tmp}/file"}, "--checkpoint-dir \\(checkpoint_dir\\) {tmp}/file is a file, not a folder"),
    ({"trainer_class": "no_such_module_x:T"}, "module no_such_module_x cannot be imported"),
    ({"trainer_class": "harness.core.trainers:Missing"}, "module harness.core.trainers has no Missing"),
    ({"trainer_class": "harness.core.trainers:resolve"}, "not a subclass of transformers.Trainer"),
])
def test_bad_files_and_classes_are_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           overrides: dict, message: str) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(runner, "load_task", lambda *a, **k: pytest.fail("reached training"))
    values = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
    with pytest.raises(HarnessError, match=message.format(tmp=tmp_path)):
        runner.run(make_config("tiny-bert", "syn-sst2", **values))


def test_check_inputs_accepts_a_checkpoint_folder(tmp_path: Path) -> None:
    (tmp_path / "trainer_state.json").write_text("{}")
    check_inputs(make_config("tiny-bert", "syn-sst2", resume_from_checkpoint=str(tmp_path)))


# ---------------------------------------------------------------------------------- real runs (tiny)

@pytest.fixture(scope="module")
def plain() -> runner.RunRecord:
    """16 optimizer steps, 3 warm-up steps, the first 12 steps traced."""
    return _run(max_train_samples=512, warmup_steps=3, trajectory_steps=12)


def test_trajectory_follows_the_linear_schedule(plain: runner.RunRecord) -> None:
    assert [t["step"] for t in plain.trajectory] == list(range(1, 13))
    lr0, total, warm = plain.config["learning_rate"], 16, 3
    for entry in plain.trajectory:
        assert math.isfinite(entry["loss"]) and math.isfinite(entry["grad_norm"]) and entry["grad_norm"] > 0
        done = entry["step"] - 1  # scheduler steps before this optimizer step: the rate it used
        expected = lr0 * (done / warm if done < warm else (total - done) / (total - warm))
        assert entry["learning_rate"] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_trajectory_does_not_change_training(plain: runner.RunRecord) -> None:
    untraced = _run(max_train_samples=512, warmup_steps=3, trajectory_steps=0)
    assert untraced.trajectory == [] and untraced.predictions == plain.predictions
    assert untraced.metrics["validation"]["loss"] == plain.metrics["validation"]["loss"]
    # the regular loss log keeps its cadence and its interval means (4.x rounds logged losses to 4 decimals)
    assert [e["step"] for e in plain.train_loss] == [e["step"] for e in untraced.train_loss] == [4, 8, 12, 16]
    for ours, theirs in zip(plain.train_loss, untraced.train_loss):
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=2e-4)


@pytest.fixture(scope="module")
def accumulated() -> runner.RunRecord:
    return _run(train_batch_size=16, gradient_accumulation_steps=2)


def test_gradient_accumulation_logs_one_entry_per_optimizer_step(accumulated: runner.RunRecord) -> None:
    assert accumulated.ok and accumulated.timings["train_steps"] == 8  # 256 rows / (16 x 2)
    assert [t["step"] for t in accumulated.trajectory] == list(range(1, 9))
    assert accumulated.config["gradient_accumulation_steps"] == 2


@pytest.mark.xfail(compat.IS_V5, strict=True, reason=(
    "transformers 5.x (measured on 5.24.0): BertForSequenceClassification.forward takes **kwargs, so the Trainer "
    "skips dividing the loss by gradient_accumulation_steps, but the head ignores num_items_in_batch: loss and "
    "gradient are 2x at accumulation 2 (huggingface/transformers#47688)"))
def test_accumulated_loss_is_a_mean_not_a_sum(accumulated: runner.RunRecord) -> None:
    assert max(t["loss"] for t in accumulated.trajectory[:3]) < 1.0  # near chance, ln 2, not 2 ln 2


def test_custom_trainer_class_runs_its_compute_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    built, build = [], compat.trainer
    monkeypatch.setattr(compat, "trainer", lambda **kw: built.append(build(**kw)) or built[-1])
    record = _run(trainer_class=trainers.EXAMPLE, train_batch_size=16, gradient_accumulation_steps=2)
    assert record.ok and type(built[0]) is trainers.ExplicitLossTrainer
    assert built[0].compute_loss_calls["train"] == 16  # every micro-batch: 256 rows / 16
    assert built[0].compute_loss_calls["eval"] >= 2  # evaluate() and predict() of 64 rows
    assert max(t["loss"] for t in record.trajectory[:3]) < 1.0  # scaled for accumulation on every version



def test_bf16_autocast_runs_on_cpu() -> None:
    record = _run(precision="bf16", device="cpu")
    assert record.ok and record.config["precision"] == "bf16"
    assert record.config["resolved_mixed_precision"] == "bf16" and record.model["dtype"] == "float32"
    assert record.predict_contract["validation"]["predictions"]["dtype"] == "float32"


@pytest.mark.skipif(not compat.resume_reads_rng_state(), reason="this Trainer cannot read rng_state.pth (compat)")
def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    whole = _run(save_steps=4, checkpoint_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8"]
    resumed = _run(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    assert [t["step"] for t in resumed.trajectory] == [5, 6, 7, 8]
    assert resumed.predictions == whole.predictions  # measured exact on 4.50.3, 4.57.6 and 5.24.0 (CPU)


def test_resume_is_refused_where_the_trainer_cannot_read_its_rng_state(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trainer_state.json").write_text("{}")
    monkeypatch.setattr(compat, "resume_reads_rng_state", lambda: False)
    with pytest.raises(HarnessError, match="resume_from_checkpoint cannot work with transformers .* torch >= 2.6"):
        runner.preflight(make_config("tiny-bert", "syn-sst2", resume_from_checkpoint=str(tmp_path)))

