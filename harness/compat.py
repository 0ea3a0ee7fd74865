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


def evaluate_reports_epoch() -> bool:
    """5.x adds `epoch` to evaluate() metrics; 4.57 does not."""
    return IS_V5
