"""Every path that builds a Trainer from a RunConfig (the runner, the train bench, the eval bench) honours every
RunConfig field: each field has a declared route (harness.core.build.ROUTES), and a non-default value of each reaches
the TrainingArguments, the Trainer class, the model and the data that every path builds. The overhead command hands
the harness side the whole config; throughput contexts keep it, and committed baselines still compare."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import transformers

from harness.overhead import measure as overhead
from harness.core.config import read_run_configs
from harness.core import build, compat, runner, throughput, trainers
from harness.core.config import RunConfig, make_config
from harness.judging.comparability import THROUGHPUT_CONFIG, throughput_why_not
from harness.core.evidence import Measurement
from harness.suite.matrix import bench_cells
from harness.store import baselines

REPO = Path(__file__).resolve().parents[1]
PATHS = ("runner", "train bench", "eval bench")
# where group_by_length goes: its own flag, or (later 5.x) one value of train_sampling_strategy
_SAMPLING = ("group_by_length" if hasattr(transformers.TrainingArguments, "group_by_length")
             else "train_sampling_strategy")
ROWS = 40  # max_train_samples: small, so that building stays fast


def _config(tmp_path: Path, **changes: Any) -> RunConfig:
    """Every field off its default (and off TrainingArguments' default), valid together on a CPU."""
    resume = tmp_path / "checkpoint-4"
    resume.mkdir(exist_ok=True)
    (resume / "trainer_state.json").write_text("{}")
    values: dict[str, Any] = dict(
        seed=3, epochs=1.5, train_batch_size=5, eval_batch_size=6, learning_rate=3e-4, weight_decay=0.03,
        max_length=16, max_train_samples=ROWS, max_eval_samples=24, data_seed=2, evals_per_epoch=2,
        precision="bf16", device="cpu", gradient_accumulation_steps=3, lr_scheduler_type="cosine", warmup_steps=2,
        optim="sgd", max_grad_norm=0.5, label_smoothing_factor=0.1, load_dtype="bfloat16", sampler_seed=7,
        group_by_length=True, eval_accumulation_steps=2, save_steps=5, checkpoint_dir=str(tmp_path / "checkpoints"),
        # resuming needs a Trainer that can read the checkpoint's rng state (runner.preflight refuses otherwise)
        resume_from_checkpoint=str(resume) if compat.resume_reads_rng_state() else None,
        trainer_class=trainers.EXAMPLE, trajectory_steps=5)
    return make_config("tiny-bert", "syn-mrpc", **{**values, **changes})


# The TrainingArguments check of each field routed there: (args, config, path) -> what reached the args, and what
# should have. The benches replace only what bench_overrides declares (steps, no evaluation/saving, a scratch folder).
Check = Callable[[Any, RunConfig, str], tuple[Any, Any]]
_BENCH = ("train bench", "eval bench")
def _warmup(a, c, p):
    """Warm-up steps of 100 planned, version-neutral (5.x keeps a ratio as a float warmup_steps)."""
    return a.get_warmup_steps(100), c.warmup_steps if c.warmup_steps is not None else round(100 * c.warmup_ratio)


ARGUMENT_CHECKS: dict[str, Check] = {
    "seed": lambda a, c, p: (a.seed, c.seed),
    "epochs": lambda a, c, p: (a.num_train_epochs, c.epochs),
    "train_batch_size": lambda a, c, p: (a.per_device_train_batch_size, c.train_batch_size),
    "eval_batch_size": lambda a, c, p: (a.per_device_eval_batch_size, c.eval_batch_size),
    "learning_rate": lambda a, c, p: (a.learning_rate, c.learning_rate),
    "weight_decay": lambda a, c, p: (a.weight_decay, c.weight_decay),
    "warmup_ratio": _warmup,
    "warmup_steps": _warmup,
    "evals_per_epoch": lambda a, c, p: ((a.eval_strategy, a.eval_steps),
                                        ("no", None) if p in _BENCH else ("steps", build.eval_interval(c, ROWS))),
    "precision": lambda a, c, p: ((a.bf16, a.fp16), (c.precision == "bf16", c.precision == "fp16")),
    "device": lambda a, c, p: (a.use_cpu, c.device == "cpu"),
    "gradient_accumulation_steps": lambda a, c, p: (a.gradient_accumulation_steps, c.gradient_accumulation_steps),
    "lr_scheduler_type": lambda a, c, p: (a.lr_scheduler_type, c.lr_scheduler_type),
    "optim": lambda a, c, p: (a.optim, c.optim),
    "max_grad_norm": lambda a, c, p: (a.max_grad_norm, c.max_grad_norm),
    "label_smoothing_factor": lambda a, c, p: (a.label_smoothing_factor, c.label_smoothing_factor),
    "sampler_seed": lambda a, c, p: (a.data_seed, c.sampler_seed),
    "group_by_length": lambda a, c, p: (getattr(a, _SAMPLING) in (True, "group_by_length"), c.group_by_length),
    "eval_accumulation_steps": lambda a, c, p: (a.eval_accumulation_steps, c.eval_accumulation_steps),
    "save_steps": lambda a, c, p: ((a.save_strategy, "no") if p in _BENCH
                                   else ((a.save_strategy, a.save_steps), ("steps", c.save_steps))),
    "checkpoint_dir": lambda a, c, p: (a.output_dir == c.checkpoint_dir, p not in _BENCH),
}
# What a bench round may replace, and nothing else: these keywords (fed by evals_per_epoch, save_steps,
# checkpoint_dir; max_steps takes precedence over the epochs, which are still passed; logging is no setting).
BENCH_KEYWORDS = {"output_dir", "max_steps", "eval_strategy", "eval_steps", "save_strategy", "save_steps",
                  "logging_strategy", "logging_steps"}


class _Built(Exception):
    """Raised instead of training: the runner's Trainer is built, which is all these tests need."""


@dataclasses.dataclass
class Built:
    trainer: Any
    train_kwargs: dict[str, Any]  # what the runner passed to train()
    bench: Any = None  # the bench that built it


def _built(config: RunConfig, monkeypatch: pytest.MonkeyPatch) -> dict[str, Built]:
    """The Trainer each path builds from `config`; nothing trains."""
    calls: list[tuple[Any, dict[str, Any]]] = []

    def stop(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append((self, kwargs))
        raise _Built

    with monkeypatch.context() as patch:
        patch.setattr(transformers.Trainer, "train", stop)
        with pytest.raises(_Built):
            runner.run(config)
    assert len(calls) == 1
    train_bench = throughput.TrainBench(config, steps=2, warmup=1)
    (train_trainer,), _ = train_bench.setup()
    eval_bench = throughput.EvalBench(config, eval_samples=100)
    return {"runner": Built(*calls[0]), "train bench": Built(train_trainer, {}, train_bench),
            "eval bench": Built(eval_bench.trainer, {}, eval_bench)}


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builder")


@pytest.fixture(scope="module")
def built(tmp_module: Path) -> Iterator[tuple[RunConfig, dict[str, Built]]]:
    config = _config(tmp_module)
    with pytest.MonkeyPatch.context() as monkeypatch:
        paths = _built(config, monkeypatch)
    yield config, paths
    _done(paths)


def _done(paths: dict[str, Built]) -> None:
    for found in paths.values():
        if found.bench is not None:
            found.bench.result()  # removes the bench's scratch folder


# ---------------------------------------------------------------------------------- every field has a route

def test_every_runconfig_field_has_a_route() -> None:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    missing, stale = sorted(fields - set(build.ROUTES)), sorted(set(build.ROUTES) - fields)
    assert not missing, f"RunConfig fields without a route in harness.core.build.ROUTES: {missing}"
    assert not stale, f"routes for fields RunConfig no longer has: {stale}"
    kinds = {build.MODEL, build.DATA, build.TRAINING_ARGUMENTS, build.TRAINER, build.TRAIN_CALL, build.RECORD,
             build.IDENTITY}
    assert set(build.ROUTES.values()) <= kinds
    routed = {name for name, kind in build.ROUTES.items() if kind == build.TRAINING_ARGUMENTS}
    assert routed == set(ARGUMENT_CHECKS), "every TrainingArguments route needs its check in ARGUMENT_CHECKS"


def test_the_values_tested_are_not_the_defaults(tmp_path: Path) -> None:
    """A dropped setting must show: each value differs from RunConfig's default and, where the TrainingArguments
    keyword has one, from TrainingArguments' default."""
    config = _config(tmp_path)
    plain = transformers.TrainingArguments(output_dir=str(tmp_path))
    for f in dataclasses.fields(RunConfig):
        if build.ROUTES[f.name] == build.IDENTITY or f.name in ("model", "task", "source", "glue_dir"):
            continue  # what names the cell; a built-in task has no other data source
        if f.name == "warmup_ratio":
            continue  # given apart from warmup_steps: test_warmup_ratio_reaches_every_path
        if f.name == "resume_from_checkpoint" and not compat.resume_reads_rng_state():
            continue
        assert getattr(config, f.name) != f.default, f.name
    for name, check in ARGUMENT_CHECKS.items():
        got, want = check(plain, config, "runner")
        assert name == "warmup_ratio" or got != want, name


def test_bench_overrides_replace_only_what_a_timed_round_must(tmp_path: Path) -> None:
    assert set(build.bench_overrides(tmp_path, 3)) == BENCH_KEYWORDS
    with pytest.raises(TypeError, match="gradient_accumulation"):
        build.training_arguments(_config(tmp_path), "cpu", ROWS, tmp_path, gradient_accumulation=1)


# ---------------------------------------------------------------------------------- every path, every field

@pytest.mark.parametrize("path", PATHS)
def test_every_training_argument_reaches_every_path(built, path: str) -> None:
    config, paths = built
    args = paths[path].trainer.args
    wrong = {}
    for name, check in ARGUMENT_CHECKS.items():
        got, want = check(args, config, path)
        if got != want:
            wrong[name] = f"{got!r} (want {want!r})"
    assert not wrong, f"{path} ignores: {wrong}"
    if path in _BENCH:
        assert args.max_steps == 2 if path == "train bench" else args.max_steps == 1


@pytest.mark.parametrize("path", PATHS)
def test_trainer_class_model_and_data_follow_the_config(built, path: str) -> None:
    config, paths = built
    trainer = paths[path].trainer
    assert type(trainer) is trainers.resolve(config.trainer_class)
    assert {p.dtype for p in trainer.model.parameters()} == {getattr(torch, config.load_dtype)}
    train = trainer.train_dataset
    assert len(train) == config.max_train_samples
    assert max(len(ids) for ids in train["input_ids"]) == config.max_length  # syn-mrpc pairs are longer
    assert isinstance(trainer.data_collator, transformers.DataCollatorWithPadding)


def test_paths_start_from_the_same_weights_and_rows(built) -> None:
    """seed (the classifier head), data_seed (the subset) and the model reach every path alike."""
    config, paths = built
    first = paths["runner"].trainer
    reference = first.model.state_dict()
    for path in PATHS[1:]:
        trainer = paths[path].trainer
        state = trainer.model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference), path
        assert trainer.train_dataset["idx"] == first.train_dataset["idx"], path
    assert len(first.eval_dataset) == config.max_eval_samples
    assert len(paths["eval bench"].bench.prepared.eval_set) == config.max_eval_samples


def test_runner_resumes_and_records_as_configured(built) -> None:
    config, paths = built
    assert paths["runner"].train_kwargs["resume_from_checkpoint"] == config.resume_from_checkpoint
    callbacks = paths["runner"].trainer.callback_handler.callbacks
    limits = [c.limit for c in callbacks if isinstance(c, runner.Trajectory)]
    assert limits == [config.trajectory_steps]


def test_warmup_ratio_reaches_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, warmup_steps=None, warmup_ratio=0.2, save_steps=None, checkpoint_dir=None,
                     resume_from_checkpoint=None, trainer_class=None)
    paths = _built(config, monkeypatch)
    for path, found in paths.items():
        assert found.trainer.args.get_warmup_steps(100) == 20, path
        assert found.trainer.args.per_device_train_batch_size == config.train_batch_size, path
    _done(paths)


# ---------------------------------------------------------------------------------- throughput contexts

def test_measurement_context_keeps_the_whole_config(built) -> None:
    config, paths = built
    context = throughput.measurement_context(config, paths["train bench"].bench.prepared)
    assert context["config"] == {**dataclasses.asdict(config), "world_size": 1}
    assert context["model"]["dtype"] == config.load_dtype


def _measurement(group: str, config: dict[str, Any], model: dict[str, Any]) -> Measurement:
    return Measurement(group=group, device_class="cpu-x", context={"config": config, "model": model}, parts={})


def test_committed_throughput_baselines_still_compare() -> None:
    """The smoke tier's benches, with the whole config in their context, compare to the committed throughput
    baselines (written with seven config keys); a Trainer setting that differs makes them incomparable."""
    found = sorted((REPO / "results" / "baselines" / "smoke").glob("*/*.throughput.json"))
    assert found
    cells = {cell.group: cell.config for cell in bench_cells("smoke")}
    for path in found:
        stored = Measurement.from_dict(baselines.read_baseline(path))
        now = {**dataclasses.asdict(cells[stored.group]), "world_size": 1}
        model = stored.context["model"]
        assert throughput_why_not(stored, _measurement(stored.group, now, model)) is None, path.name
        for name, value in (("gradient_accumulation_steps", 2), ("optim", "sgd"), ("max_grad_norm", 0.0),
                            ("trainer_class", trainers.EXAMPLE), ("eval_accumulation_steps", 4)):
            assert name in THROUGHPUT_CONFIG
            why = throughput_why_not(stored, _measurement(stored.group, {**now, name: value}, model))
            assert why is not None and name in why, (path.name, name)
    # recorded on both sides from now on: judged too
    base = {**now, "learning_rate": 1e-3}
    assert throughput_why_not(_measurement("g", base, {}), _measurement("g", {**base, "learning_rate": 2e-3}, {}))


# ---------------------------------------------------------------------------------- overhead: the harness side

def test_overhead_harness_side_gets_the_whole_config(tmp_path: Path) -> None:
    config = _config(tmp_path, resume_from_checkpoint=None)
    command = overhead.harness_command(config, 1, tmp_path)
    written = Path(command[command.index("--run-configs") + 1])
    assert written.parent == tmp_path
    assert json.loads(written.read_text()) == [dataclasses.asdict(config)]
    assert read_run_configs(written) == [config]
    assert not {"--epochs", "--preset", "--models", "--learning-rate"} & set(command)  # no setting rebuilt as a flag
