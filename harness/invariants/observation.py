"""What one train() of a training `TrainCase` did, as the driver records it and the checks read it. Pure data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.invariants.cases import TrainCase


@dataclass(frozen=True)
class Logged:
    """One training log entry with a loss (the loss is the mean over the steps since the previous entry)."""

    step: int
    loss: float
    grad_norm: float | None
    learning_rate: float
    epoch: float


@dataclass(frozen=True)
class LossCall:
    """One call of the overriding compute_loss: the examples it saw and the num_items_in_batch it was given."""

    rows: tuple[int, ...]
    num_items: int | None


@dataclass(frozen=True)
class Predicted:
    """One predict() call: its predictions, label_ids and metrics."""

    predictions: np.ndarray
    label_ids: np.ndarray | None
    metrics: dict[str, float]


@dataclass
class TrainRun:
    """What one train() of a `TrainCase` did; parameters are float32 numpy copies (their dtypes are in `dtypes`)."""

    case: TrainCase
    logs: tuple[Logged, ...] = ()
    initial: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    global_step: int = 0
    epoch: float = 0.0
    max_steps: int = 0
    train_loss: float = math.nan
    final_lr: float = math.nan  # the scheduler's learning rate after the last step
    log_entries: int = 0  # len(state.log_history): loss logs, evaluations and the final train metrics
    evaluated_at: tuple[int, ...] = ()  # global_step at each evaluation
    saved_at: tuple[int, ...] = ()  # global_step at each checkpoint
    batches: tuple[tuple[int, ...], ...] = ()  # example indices of each training micro-batch, in order
    windows: tuple[int, ...] = ()  # micro-batches per optimizer step
    decay_groups: tuple[tuple[float, frozenset[str]], ...] = ()  # the optimizer's (weight_decay, parameter names)
    declared_decay: frozenset[str] = frozenset()  # Trainer.get_decay_parameter_names(model)
    norm_params: frozenset[str] = frozenset()  # parameters of LayerNorm/RMSNorm modules
    loss_calls: tuple[LossCall, ...] = ()  # compute_loss calls (case.loss_scale only)
    forward_dtypes: frozenset[str] = frozenset()  # output dtypes of the Linear layers in training forwards
    step_dtypes: tuple[dict[str, str], ...] = ()  # parameter dtypes after each optimizer step
    step_lrs: tuple[float, ...] = ()  # the learning rate each optimizer step applied (its decayed group's)
    interrupted_at: int | None = None  # the step whose checkpoint the resumed Trainer started from
    snapshots: tuple[dict[str, np.ndarray], ...] = ()  # parameters each optimizer step started from (case.snapshots)
    collated: tuple[dict[str, Any], ...] = ()  # the collated micro-batches, in order (case.snapshots)
    train_metrics: dict[str, float] = field(default_factory=dict)  # TrainOutput.metrics of the last train() call
    final_log: dict[str, float] = field(default_factory=dict)  # the last log_history entry (the train metrics)
    evaluations: tuple[tuple[int, dict[str, float]], ...] = ()  # (global_step, metrics) of each evaluation log
    best_checkpoint: str | None = None  # state.best_model_checkpoint (its folder name)
    best_metric: float | None = None  # state.best_metric
    saved_params: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # case.best_metric: at each save
    on_disk: tuple[int, ...] = ()  # the checkpoints left in the output folder after train()
    predicted: tuple[Predicted, ...] = ()  # case.predict_data: two predict() calls on the final weights
    alone: np.ndarray | None = None  # case.predict_data: each row's logits from a forward of that row alone
    label_dtypes: frozenset[str] = frozenset()  # dtypes of the labels the collator handed the model
    problem_type: str | None = None  # model.config.problem_type after train()
    error: Exception | None = None  # what train() raised; the other fields hold what was recorded until then
