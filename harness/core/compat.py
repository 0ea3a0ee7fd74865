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
    exactly that; `group_by_length=True` becomes `train_sampling_strategy="group_by_length"` where the flag is gone
    (5.24.0 has no flag, 5.0.0 still has it). Anything neither version accepts fails loudly instead of being dropped.
    """
    args = {k: v for k, v in kwargs.items() if v is not None}
    if IS_V5 and "warmup_ratio" in args:
        args["warmup_steps"] = float(args.pop("warmup_ratio"))
    if "group_by_length" in args and "group_by_length" not in _accepted(transformers.TrainingArguments):
        if args.pop("group_by_length"):
            args["train_sampling_strategy"] = "group_by_length"
    unknown = set(args) - _accepted(transformers.TrainingArguments)
    if unknown:
        raise TypeError(f"transformers {TRANSFORMERS_VERSION} TrainingArguments does not accept {sorted(unknown)}")
    return transformers.TrainingArguments(**args)


def trainer(*, tokenizer: Any = None, trainer_class: type | None = None, **kwargs: Any) -> transformers.Trainer:
    """Build a Trainer (or the given subclass); the tokenizer goes in as `processing_class` (the only name 5.x
    accepts, 4.46+ too)."""
    if tokenizer is not None:
        kwargs["processing_class"] = tokenizer
    trainer = (trainer_class or transformers.Trainer)(**kwargs)
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # the harness reports progress itself
    return trainer


def predict_in_dataset_order(trainer: transformers.Trainer, dataset: Any) -> Any:
    """trainer.predict(dataset) with predictions and label_ids in the dataset's row order. With group_by_length the
    Trainer evaluates in a length-grouped, shuffled order and returns rows in that order (known defect
    eval-order-grouped-by-length, 4.46+): the order its sampler drew is kept and undone here, so the evaluation
    still runs grouped (as fast) while row i is dataset row i."""
    import numpy as np

    original = trainer._get_eval_sampler
    drawn: list[list[int]] = []

    def keeping(evaluated: Any) -> Any:
        sampler = original(evaluated)  # `evaluated`: the dataset, its unused columns removed
        if sampler is None:
            return sampler
        drawn.append(list(iter(sampler)))
        return drawn[-1]

    trainer._get_eval_sampler = keeping
    try:
        output = trainer.predict(dataset)
    finally:
        del trainer._get_eval_sampler  # the class's method again
    order = drawn[-1] if drawn else None
    if order is None or order == list(range(len(order))) or len(order) != len(output.predictions):
        return output
    back = np.argsort(np.asarray(order))
    labels = None if output.label_ids is None else np.asarray(output.label_ids)[back]
    return output._replace(predictions=np.asarray(output.predictions)[back], label_ids=labels)


def load_dtype_arguments(name: str) -> dict[str, Any]:
    """from_pretrained kwargs loading the weights in dtype `name`: "auto" (the checkpoint's) or a torch dtype name,
    under the keyword this version reads (`dtype_argument`; 4.56+ log a deprecation for `torch_dtype`). Always
    given: 5.x changed the default from float32 to "auto" (#42805)."""
    import torch

    return {dtype_argument(): name if name == "auto" else getattr(torch, name)}


def resume_reads_rng_state() -> bool:
    """Whether train(resume_from_checkpoint=...) can read the checkpoint's rng_state.pth here: 4.46.3 torch.load()s it
    under torch's default weights_only, which torch >= 2.6 turns on and which refuses its numpy arrays; 4.50.3 allows
    them with safe_globals (read in both sources; huggingface/transformers#34631)."""
    import torch

    return TRANSFORMERS_VERSION >= Version("4.50") or Version(torch.__version__).release < (2, 6)


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


# ---- training invariants (harness/invariants/ asks these)
# What a train() invariant expects where versions intend different things. Behaviour a version gets wrong is not
# here: it is a known defect, listed with its version range in harness/invariants/defects.py.


def update_steps_per_epoch(batches: int, accumulation: int) -> int:
    """Optimizer steps per epoch of `batches` micro-batches: a partial last accumulation window still steps, so
    ceil(batches / accumulation), at least 1 (4.52+, PR #37923; 4.46-4.51 counted the floor while still stepping on
    the partial window, issue #37777: a defect, not an intended difference)."""
    return max(-(-batches // accumulation), 1)


def evaluates_after_last_step() -> bool:
    """With eval_strategy="steps", 5.4 and later also evaluate after the last step when it is not a multiple of
    eval_steps (DefaultFlowCallback.on_step_end); 5.3.0, 5.0.0 and 4.57.6 do not (read in the released wheels)."""
    return TRANSFORMERS_VERSION >= Version("5.4")


def dtype_argument() -> str:
    """The from_pretrained keyword that sets the parameter dtype: `dtype` from 4.56 on (4.57.6 reads it), `torch_dtype`
    before (4.53.3 reads only that)."""
    return "dtype" if TRANSFORMERS_VERSION >= Version("4.56") else "torch_dtype"


def logged_loss_decimals() -> int | None:
    """Decimals the Trainer rounds a logged training loss to: 4 on 4.x (round(loss, 4) in _maybe_log_save_evaluate,
    4.46.3 and 4.57.6 alike), none on 5.x; train_loss in the TrainOutput is never rounded."""
    return None if IS_V5 else 4
