"""The only module that knows which transformers version is installed and what it renamed or removed."""

from __future__ import annotations

import inspect
from typing import Any

import transformers
from packaging.version import Version

TRANSFORMERS_VERSION = Version(transformers.__version__)
IS_V5 = TRANSFORMERS_VERSION.major >= 5
MIN_SUPPORTED = Version("4.46")

# 5.x removed these TrainingArguments; 4.46-4.57 still accept them (with warnings for some).
REMOVED_IN_V5 = ("overwrite_output_dir", "logging_dir", "no_cuda", "use_ipex", "warmup_ratio",
                 "include_inputs_for_metrics", "group_by_length", "evaluation_strategy")


def _accepted(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def training_arguments(**kwargs: Any) -> transformers.TrainingArguments:
    """Build TrainingArguments from version-neutral names.

    `warmup_ratio` (a fraction of training steps) becomes a float `warmup_steps` on 5.x, where a float below 1 means
    exactly that. Anything neither version accepts fails loudly instead of being dropped.
    """
    args = {k: v for k, v in kwargs.items() if v is not None}
    if IS_V5 and "warmup_ratio" in args:
        args["warmup_steps"] = float(args.pop("warmup_ratio"))
    unknown = set(args) - _accepted(transformers.TrainingArguments)
    if unknown:
        raise TypeError(f"transformers {TRANSFORMERS_VERSION} TrainingArguments does not accept {sorted(unknown)}")
    return transformers.TrainingArguments(**args)


def trainer(*, tokenizer: Any = None, **kwargs: Any) -> transformers.Trainer:
    """Build a Trainer; the tokenizer goes in as `processing_class` (the only name 5.x accepts, 4.46+ too)."""
    if tokenizer is not None:
        kwargs["processing_class"] = tokenizer
    trainer = transformers.Trainer(**kwargs)
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # the harness reports progress itself
    return trainer


# ------------------------------------------------------------------ output contracts (harness/contracts/ asks these)

# What replaces a TrainingArguments / Trainer argument that 5.x removed; `harness contracts diff` quotes it.
ARGUMENT_REPLACEMENTS: dict[str, str] = {
    "TrainingArguments.evaluation_strategy": "eval_strategy",
    "TrainingArguments.no_cuda": "use_cpu",
    "TrainingArguments.warmup_ratio": "warmup_steps (a float below 1 is a fraction of the training steps)",
    "TrainingArguments.include_inputs_for_metrics": 'include_for_metrics=["inputs"]',
    "TrainingArguments.group_by_length": 'train_sampling_strategy="group_by_length"',
    "TrainingArguments.logging_dir": "the TENSORBOARD_LOGGING_DIR environment variable",
    "TrainingArguments.overwrite_output_dir": "nothing: resume explicitly with train(resume_from_checkpoint=...)",
    "TrainingArguments.use_ipex": "nothing: IPEX support was dropped",
    "Trainer.__init__.tokenizer": "processing_class",
}


def include_for_metrics_arguments(include: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """TrainingArguments kwargs that make evaluation pass `include` ("inputs", "loss") to compute_metrics."""
    if not include:
        return {}
    if "include_for_metrics" in _accepted(transformers.TrainingArguments):  # 4.46+
        return {"include_for_metrics": list(include)}
    if set(include) == {"inputs"}:
        return {"include_inputs_for_metrics": True}
    raise TypeError(f"transformers {TRANSFORMERS_VERSION} cannot pass {sorted(include)} to compute_metrics")


def reports_model_preparation_time(*, trained_before_first_eval: bool) -> bool:
    """`<prefix>_model_preparation_time` is in every evaluate()/predict() result of a Trainer whose first evaluation
    ran before train() (the model was prepared for evaluation alone), and never once train() ran first (measured on
    4.57.6 and 5.24.0)."""
    return not trained_before_first_eval


def evaluate_reports_epoch_key(*, trained: bool) -> bool:
    """evaluate() adds an unprefixed `epoch`: 5.x always (TrainerState.epoch starts at 0), 4.x only after train()
    (it starts as None). predict() never reports it."""
    return IS_V5 or trained


def eval_prediction_arity(include: tuple[str, ...] | list[str]) -> int:
    """Elements an EvalPrediction unpacks into: (predictions, label_ids), then inputs and losses when
    include_for_metrics asks for them; `logits, labels = eval_pred` only works without include_for_metrics."""
    return 2 + len({"inputs", "loss"} & set(include))


def runtime_subtracts_stale_preparation_time() -> bool:
    """Trainer bug (measured on 4.57.6 and 5.24.0): every evaluate()/predict() after a Trainer's first one subtracts
    that first call's `model_preparation_time` from its own `runtime` again, although no preparation happened, so a
    short later call can report a negative runtime and throughput."""
    return True
