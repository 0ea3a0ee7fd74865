"""What a train() invariant check is made of: the invariant ids, the drawn `Case`, and a broken invariant's report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.contracts.cases import DataSpec

INVARIANTS: Mapping[str, str] = MappingProxyType({
    "accumulation": "(batch b x accumulation k) and (batch b*k x 1) over the same examples log the same loss and "
                    "grad norm at every step and end with the same parameters, padded or not",
    "steps": "global_step, the final epoch, evaluations, log entries and saves follow the documented formulas",
    "schedule": "the logged learning rate follows the scheduler's formula at every step and ends where it should",
    "resume": "N steps, a checkpoint, and a resumed Trainer for the rest equal the straight run (losses, learning "
              "rates, grad norms, parameters and their dtypes)",
    "determinism": "the same case twice on CPU is bit-identical (losses, grad norms, parameters, example order)",
    "data_seed": "data_seed changes only the order of examples: each epoch sees the same multiset, and the same "
                 "data_seed gives the same order whatever the seed",
    "loss": "each logged loss is the mean per-example loss of its steps' examples, recomputed outside the Trainer "
            "with the parameters the step started from; train_loss is the mean of all step losses",
    "weight_decay": "weight decay goes to exactly the documented parameters (not biases, not LayerNorm weights), as "
                    "p * (1 - lr * wd) per step when the loss is zero",
    "compute_loss": "an overriding compute_loss(model, inputs, return_outputs, num_items_in_batch) is called once per "
                    "micro-batch with the step's label count (or None), and its loss is the one optimized",
    "dtype": "parameters stay in the dtype asked (float32 masters under bf16 autocast, bfloat16 when loaded so), "
             "the training forward runs in the precision asked, and so does a float32 run after it in the process",
    "best_checkpoint": "with load_best_model_at_end, the best checkpoint is the first evaluation the metric ranks best, "
                       "train() ends with that checkpoint's weights, save_total_limit keeps it, and early stopping "
                       "stops after `patience` evaluations without improvement",
    "resume_outputs": "a resumed train() returns and logs what its own part of the run did: training_loss is the mean "
                      "of its steps' losses, steps/s and samples/s count its steps and samples, and the final epoch "
                      "is the uninterrupted run's",
    "predict_rows": "predict() row i is dataset row i (logits of a lone forward, its label), every row comes back "
                    "(a drop_last batch excepted), and two predict() calls on the same weights agree exactly, "
                    "under every sampler, eval batch and eval_accumulation_steps setting",
    "loss_options": "accumulation equivalence holds for every loss path: label_smoothing_factor, an overriding "
                    "compute_loss that returns a mean, class-weighted per-example losses",
    "collation": "DataCollatorWithPadding (pad_to_multiple_of or not) and default_data_collator, with labels as "
                 "Python ints, numpy integers or tensors, give the model int64 labels (float32 for regression), the "
                 "task's problem_type, and the same training as the padding collator with int labels",
    "local_tokenizer": "a tokenizer built from a vocabulary file (as offline users build one) tokenizes the task's "
                       "text as the checkpoint's own does, with few unknown pieces, and its ids survive a decode",
})

SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
OPTIMIZERS = ("adamw_torch", "sgd")
# fp32; bf16 autocast over float32 weights (TrainingArguments bf16=True); weights loaded as bfloat16; fp16 autocast
# with loss scaling (CUDA only)
PRECISIONS = ("fp32", "bf16", "bf16-weights", "fp16")
# the model's own loss, TrainingArguments.label_smoothing_factor, and two compute_loss overrides users write
LOSS_PATHS = ("model", "label_smoothing", "custom_mean", "class_weights")
# DataCollatorWithPadding, the same with pad_to_multiple_of=8, default_data_collator
COLLATORS = ("padding", "padding-8", "default")
LABEL_TYPES = ("int", "numpy", "tensor")  # how a plain-list dataset holds its labels ("int": a datasets.Dataset)
CLASS_WEIGHTS = (1.0, 2.0, 0.5)  # class_weights: each example's loss times its class's weight
DEVICES = ("cpu", "cuda")
EVAL_DATA = DataSpec(rows=3, seed=7, min_length=1, max_length=1)  # length 1: never mistaken for a training row


@dataclass(frozen=True)
class Case:
    """One train() run; its repr is valid Python, so a failing case can be pasted to reproduce it."""

    model: str = "tiny-bert"
    num_labels: int = 2  # 1 = regression
    data: DataSpec = field(default_factory=lambda: DataSpec(rows=16, min_length=2))  # rows of length >= 2
    batch: int = 4
    accumulation: int = 1
    epochs: int = 1
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 1e-3
    optimizer: str = "adamw_torch"
    weight_decay: float = 0.0
    scheduler: str = "linear"
    warmup_steps: int = 0
    seed: int = 0
    data_seed: int | None = None
    alt_data_seed: int | None = None  # the data_seed check's partner run: this data_seed with seed + 1
    dropout: bool = False  # False: every dropout zeroed, so train-mode arithmetic equals eval mode
    logging_steps: int = 1
    eval_steps: int | None = None  # evaluate every n steps on EVAL_DATA
    save_steps: int | None = None  # save a checkpoint every n steps
    interrupt_at: int | None = None  # stop after this step with a checkpoint, then finish in a fresh Trainer
    loss_scale: float | None = None  # train through a Trainer subclass whose compute_loss multiplies the loss
    precision: str = "fp32"  # one of PRECISIONS
    snapshots: bool = False  # keep the parameters each optimizer step starts from (loss replay, weight decay)
    device: str = "cpu"  # one of DEVICES
    # checkpoint selection: evaluate and save every eval_steps, load_best_model_at_end on this metric
    best_metric: str | None = None  # metric_for_best_model, e.g. "eval_loss", "loss", "accuracy"
    greater_is_better: bool | None = None  # None: the Trainer's default for the metric
    save_total_limit: int | None = None
    patience: int | None = None  # EarlyStoppingCallback(early_stopping_patience)
    # prediction: predict() twice on these rows after training, with these evaluation settings
    predict_data: DataSpec | None = None
    eval_batch: int = 8
    eval_accumulation: int | None = None
    drop_last: bool = False
    group_by_length: bool = False
    loss_path: str = "model"  # one of LOSS_PATHS
    collator: str = "padding"  # one of COLLATORS
    label_type: str = "int"  # one of LABEL_TYPES

    def __post_init__(self) -> None:
        for name, allowed in (("scheduler", SCHEDULERS), ("optimizer", OPTIMIZERS), ("precision", PRECISIONS),
                              ("device", DEVICES), ("loss_path", LOSS_PATHS), ("collator", COLLATORS),
                              ("label_type", LABEL_TYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Case.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.precision == "fp16" and self.device != "cuda":
            raise ValueError("Case.precision 'fp16' needs device 'cuda' (the Trainer refuses fp16 on CPU)")
        if self.best_metric is not None and not self.eval_steps:
            raise ValueError("Case.best_metric needs eval_steps (checkpoints are selected among evaluations)")
        if self.loss_path in ("label_smoothing", "class_weights") and self.num_labels < 2:
            raise ValueError(f"Case.loss_path {self.loss_path!r} needs classes (num_labels >= 2)")

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.data.rows / self.batch)

    @property
    def padded(self) -> bool:
        """Rows of different lengths, so batches are padded."""
        return self.data.min_length < self.data.max_length and self.data.rows > 1

    def reproduce_snippet(self, invariant: str) -> str:
        return ("from harness.training import *\n"
                f"print(*verify({invariant!r}, {self!r}), sep='\\n')")


@dataclass(frozen=True)
class Broken:
    """One broken invariant: which, in which setting, the first optimizer step it breaks at (None: not tied to a
    step), and what was seen."""

    invariant: str
    setting: str
    step: int | None
    detail: str

    def __post_init__(self) -> None:
        if self.invariant not in INVARIANTS:
            raise KeyError(f"unknown invariant {self.invariant!r}; known: {', '.join(INVARIANTS)}")

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.setting}: {self.detail}"


# One fixed case per invariant, run first by the suite and clean (or broken only by a known defect) on a sound
# Trainer: the fault tests break each with one injected fault. Rows are multiples of the batch (full micro-batches).
WITNESSES: Mapping[str, Case] = MappingProxyType({
    "accumulation": Case(data=DataSpec(rows=12, seed=1, min_length=2, max_length=14), batch=2, accumulation=3,
                         epochs=2),
    "steps": Case(data=DataSpec(rows=10, seed=2, min_length=2), batch=2, accumulation=2, epochs=2, logging_steps=2,
                  eval_steps=2, save_steps=4),
    "schedule": Case(model="tiny-electra", scheduler="cosine", warmup_steps=2, epochs=3),
    "resume": Case(model="tiny-roberta", interrupt_at=2, epochs=2, dropout=True),
    "determinism": Case(model="tiny-distilbert", dropout=True, epochs=2),
    "data_seed": Case(model="tiny-albert", epochs=2, data_seed=5, alt_data_seed=5),
    "loss": Case(model="tiny-deberta-v2", data=DataSpec(rows=16, seed=3, min_length=2, max_length=14), batch=2,
                 accumulation=2, logging_steps=2, snapshots=True),
    "weight_decay": Case(loss_scale=0.0, weight_decay=0.1, learning_rate=1e-2, snapshots=True),
    "compute_loss": Case(model="tiny-electra", loss_scale=0.0, batch=2, accumulation=2, snapshots=True),
    "dtype": Case(precision="bf16"),
    "best_checkpoint": Case(model="tiny-electra", learning_rate=2e-2, epochs=3, eval_steps=2, best_metric="eval_loss",
                            save_total_limit=1, patience=2, seed=4),
    "resume_outputs": Case(data=DataSpec(rows=10, seed=8, min_length=2, max_length=12), batch=2, epochs=2,
                           interrupt_at=5),
    "predict_rows": Case(model="tiny-roberta", data=DataSpec(rows=8, seed=9, min_length=2, max_length=16),
                         predict_data=DataSpec(rows=11, seed=10, min_length=2, max_length=24), eval_batch=3,
                         eval_accumulation=2),
    "loss_options": Case(model="tiny-distilbert", data=DataSpec(rows=12, seed=11, min_length=2, max_length=14),
                         batch=2, accumulation=3, loss_path="label_smoothing"),
    "collation": Case(model="tiny-albert", num_labels=3, collator="default", label_type="numpy"),
})


def format_failure(invariant: str, case: Case, broken: list[Broken]) -> str:
    """`case` is a Case, or a tokenization.TokenizerCase for local_tokenizer (no model)."""
    lines = [f"{len(broken)} invariant break(s) for {getattr(case, 'model', 'a vocab-file tokenizer')} "
             f"({INVARIANTS[invariant]}):"]
    lines += [f"  {b}" for b in broken]
    lines += ["reproduce with:", *(f"  {line}" for line in case.reproduce_snippet(invariant).splitlines())]
    return "\n".join(lines)
