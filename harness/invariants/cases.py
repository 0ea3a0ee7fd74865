"""What a train() invariant check is made of: the invariant ids, the drawn `TrainCase`, and a broken invariant's report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.contracts.cases import DataSpec

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
class TrainCase:
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
                raise ValueError(f"TrainCase.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.precision == "fp16" and self.device != "cuda":
            raise ValueError("TrainCase.precision 'fp16' needs device 'cuda' (the Trainer refuses fp16 on CPU)")
        if self.best_metric is not None and not self.eval_steps:
            raise ValueError("TrainCase.best_metric needs eval_steps (checkpoints are selected among evaluations)")
        if self.loss_path in ("label_smoothing", "class_weights") and self.num_labels < 2:
            raise ValueError(f"TrainCase.loss_path {self.loss_path!r} needs classes (num_labels >= 2)")

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.data.rows / self.batch)

    @property
    def padded(self) -> bool:
        """Rows of different lengths, so batches are padded."""
        return self.data.min_length < self.data.max_length and self.data.rows > 1

    def reproduce_snippet(self, invariant: str) -> str:
        return ("from harness.invariants import *\n"
                f"print(*verify({invariant!r}, {self!r}), sep='\\n')")


@dataclass(frozen=True)
class Broken:
    """One broken invariant: which, in which setting, the first optimizer step it breaks at (None: not tied to a
    step), and what was seen."""

    invariant: str
    setting: str
    step: int | None
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.setting}: {self.detail}"
