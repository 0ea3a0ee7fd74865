"""What one drive of a contract `Case` through the Trainer produced, as the driver records it and the checks read
it. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.contracts.cases import Case, Rows
from harness.data.tasks import TaskSpec


@dataclass
class MetricsCall:
    """What one compute_metrics call received."""

    arity: int  # elements the EvalPrediction unpacks into
    unpacks_as_pair: bool  # its first two elements are .predictions and .label_ids
    types: dict[str, str]  # type names of predictions, label_ids, inputs, losses
    predictions: Any
    label_ids: Any
    inputs: Any
    losses: Any
    compute_result: bool | None



@dataclass
class Predicted:
    """One dataset through predict(): the timed first call and what compute_metrics saw during it, the same call
    again, one on a Trainer with the case's other batch size, and the per-example reference logits."""

    name: str
    rows: Rows
    output: Any = None
    wall: float | None = None  # seconds the first call took
    calls: list[MetricsCall] = field(default_factory=list)
    again: Any = None
    other: Any = None
    reference: np.ndarray | None = None  # set once all three calls returned prediction outputs
    error: Exception | None = None  # what one of the calls raised

    @property
    def complete(self) -> bool:
        """All three calls returned something with predictions and metrics."""
        return self.error is None and all(hasattr(out, "predictions") and hasattr(out, "metrics")
                                          for out in (self.output, self.again, self.other))


@dataclass
class Evaluated:
    """One evaluate() call: its metrics dict, duration and compute_metrics calls, or what it raised."""

    metrics: Any = None
    wall: float | None = None
    calls: list[MetricsCall] = field(default_factory=list)
    error: Exception | None = None


@dataclass
class Observation:
    """Everything one drive of a `Case` produced, in the order it happened."""

    case: Case
    task: TaskSpec
    pad_id: int
    names: tuple[str, ...]  # the eval set names, one per dataset of the case
    train_error: Exception | None = None  # what training before predict() raised; nothing was driven after it
    predicted: list[Predicted] = field(default_factory=list)  # per dataset, in order
    evaluated: Evaluated | None = None  # None when not asked for or a predict() did not complete

    @property
    def errors(self) -> list[Exception]:
        found = [self.train_error, *(run.error for run in self.predicted),
                 self.evaluated.error if self.evaluated is not None else None]
        return [err for err in found if err is not None]
