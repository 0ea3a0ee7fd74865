"""The one builder of a cell's Trainer: RunConfig -> model, TrainingArguments, Trainer.

The runner (`runner.run`) and both throughput benches (`throughput.TrainBench`, `EvalBench`) build through these
functions, so a Trainer setting reaches every path or none. Where a path must differ (a bench runs a fixed number of
steps and neither evaluates, saves nor logs), it passes overrides that each replace a keyword the config sets: a
RunConfig field is never dropped by leaving it out. `ROUTES` says where every field takes effect;
tests/test_trainer_builder.py fails for a field without a route and for a route a path ignores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from transformers import DataCollatorWithPadding, set_seed

from harness.core import compat
from harness.core import distributed
from harness.core import models
from harness.core import trainers
from harness.core.config import RunConfig
from harness.data.tasks import TaskSpec

# Where a RunConfig field takes effect.
MODEL = "model"  # load_model: which checkpoint, in which dtype
DATA = "data"  # load_task / featurize: which rows, how long
TRAINING_ARGUMENTS = "training_arguments"  # a TrainingArguments keyword (argument_values)
TRAINER = "trainer"  # the Trainer class
TRAIN_CALL = "train_call"  # Trainer.train()'s arguments (the runner only: a bench round starts fresh)
RECORD = "record"  # what the runner records, not how it trains
IDENTITY = "identity"  # names the cell; its values are already in the other fields

ROUTES: Mapping[str, str] = MappingProxyType({
    "model": MODEL, "load_dtype": MODEL,
    "task": DATA, "max_length": DATA, "max_train_samples": DATA, "max_eval_samples": DATA, "data_seed": DATA,
    "source": DATA, "glue_dir": DATA,
    "seed": TRAINING_ARGUMENTS,  # also seeds the classifier head (load_model)
    "epochs": TRAINING_ARGUMENTS, "train_batch_size": TRAINING_ARGUMENTS, "eval_batch_size": TRAINING_ARGUMENTS,
    "learning_rate": TRAINING_ARGUMENTS, "weight_decay": TRAINING_ARGUMENTS, "warmup_ratio": TRAINING_ARGUMENTS,
    "evals_per_epoch": TRAINING_ARGUMENTS, "precision": TRAINING_ARGUMENTS, "device": TRAINING_ARGUMENTS,
    "gradient_accumulation_steps": TRAINING_ARGUMENTS, "lr_scheduler_type": TRAINING_ARGUMENTS,
    "warmup_steps": TRAINING_ARGUMENTS, "optim": TRAINING_ARGUMENTS, "max_grad_norm": TRAINING_ARGUMENTS,
    "label_smoothing_factor": TRAINING_ARGUMENTS, "sampler_seed": TRAINING_ARGUMENTS,
    "group_by_length": TRAINING_ARGUMENTS, "eval_accumulation_steps": TRAINING_ARGUMENTS,
    "save_steps": TRAINING_ARGUMENTS, "checkpoint_dir": TRAINING_ARGUMENTS,
    "trainer_class": TRAINER,
    "resume_from_checkpoint": TRAIN_CALL,
    "trajectory_steps": RECORD,
    "preset": IDENTITY, "name": IDENTITY,
})


def steps_per_epoch(config: RunConfig, train_rows: int) -> int:
    """Optimizer steps per epoch; each of torchrun's processes takes every world_size-th batch."""
    batches = math.ceil(math.ceil(train_rows / config.train_batch_size) / distributed.world_size())
    return math.ceil(batches / config.gradient_accumulation_steps)


def eval_interval(config: RunConfig, train_rows: int) -> int | None:
    """Steps between evaluations when a cell evaluates more than once per epoch (None: once, at its end). Rounded
    up: the last interval ends at (or past) the epoch's end, where the Trainer evaluates anyway, instead of a step or
    two before it (two evaluations of nearly the same model)."""
    if config.evals_per_epoch <= 1:
        return None
    return math.ceil(steps_per_epoch(config, train_rows) / config.evals_per_epoch)


def expanded(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser())


def argument_values(config: RunConfig, device: str, train_rows: int, output_dir: Path | str) -> dict[str, Any]:
    """The version-neutral TrainingArguments keywords of a cell, every RunConfig setting among them. A None value is
    left out by compat (TrainingArguments' own default)."""
    eval_every = eval_interval(config, train_rows)
    saving = config.save_steps is not None
    return dict(
        output_dir=expanded(config.checkpoint_dir) if saving else str(output_dir),
        num_train_epochs=config.epochs, max_steps=None,  # None: the epochs decide (a bench sets a step count)
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.train_batch_size, per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        eval_accumulation_steps=config.eval_accumulation_steps, optim=config.optim,
        lr_scheduler_type=config.lr_scheduler_type, weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio if config.warmup_steps is None else None, warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm, label_smoothing_factor=config.label_smoothing_factor,
        group_by_length=config.group_by_length,
        seed=config.seed, data_seed=config.sampler_seed,
        eval_strategy="steps" if eval_every else "epoch", eval_steps=eval_every,
        save_strategy="steps" if saving else "no", save_steps=config.save_steps,
        logging_strategy="steps", logging_steps=max(1, steps_per_epoch(config, train_rows) // 4),
        logging_nan_inf_filter=False,  # the default hides a diverged loss by averaging it away
        report_to="none", disable_tqdm=True, use_cpu=device == "cpu", dataloader_pin_memory=device == "cuda",
        fp16=config.precision == "fp16", bf16=config.precision == "bf16")


def training_arguments(config: RunConfig, device: str, train_rows: int, output_dir: Path | str, /,
                       **overrides: Any) -> Any:
    """The TrainingArguments of a cell (through compat: renames between versions). Each override replaces one
    keyword of `argument_values` (output_dir too); one naming anything else is refused, so nothing is added behind
    the config."""
    values = argument_values(config, device, train_rows, output_dir)
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise TypeError(f"overrides {unknown} replace no TrainingArguments keyword the config sets "
                        f"(known: {sorted(values)})")
    return compat.training_arguments(**{**values, **overrides})


def bench_overrides(output_dir: Path | str, max_steps: int) -> dict[str, Any]:
    """What a throughput round replaces: `max_steps` optimizer steps (instead of the epochs) in a scratch folder,
    nothing evaluated, saved or logged (evals_per_epoch, save_steps and checkpoint_dir do not apply to a timed
    round). Every other setting is the cell's."""
    return {"output_dir": str(output_dir), "max_steps": max_steps, "eval_strategy": "no", "eval_steps": None,
            "save_strategy": "no", "save_steps": None, "logging_strategy": "no", "logging_steps": None}


def load_model(config: RunConfig, spec: models.ModelSpec, task: TaskSpec) -> models.LoadedModel:
    """Tokenizer and model in config.load_dtype; the new classifier head is drawn from config.seed (seeded here,
    right before loading, so every path starts from the same weights)."""
    set_seed(config.seed)
    return models.load(spec, task, dtype=config.load_dtype)


def trainer(config: RunConfig, *, model: Any, tokenizer: Any, train_set: Any, args: Any, eval_set: Any = None,
            compute_metrics: Any = None, callbacks: Sequence[Any] = ()) -> Any:
    """The cell's Trainer (config.trainer_class, or transformers.Trainer) with dynamic padding, as the course does."""
    return compat.trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                          tokenizer=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=compute_metrics, trainer_class=trainers.resolve(config.trainer_class),
                          callbacks=list(callbacks))
