"""What a contract check is made of: the contract ids, `Case`s, their seeded in-memory data, failure messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.data.tasks import TaskSpec, get_task

CONTRACTS: Mapping[str, str] = MappingProxyType({
    "trainer.raised": "predict() and evaluate() complete without raising",
    "predict.type": "predict() returns a PredictionOutput with fields (predictions, label_ids, metrics)",
    "predictions.shape": "one row per example: shape (n, num_labels), regression (n, 1)",
    "predictions.dtype": "predictions are float32",
    "predictions.finite": "predictions are finite",
    "predictions.order": "row i equals the eval-mode forward pass of example i alone (dataset order, dropout off)",
    "predictions.batch_invariant": "logits do not depend on the eval batch size or eval_accumulation_steps",
    "predict.deterministic": "predict() twice on the same data gives identical predictions, label_ids and metrics",
    "label_ids.values": "label_ids equal the dataset labels exactly, in dataset order",
    "label_ids.dtype": "label_ids are int64 for classification, float32 for regression",
    "label_ids.none": "label_ids is None when the dataset has no label column",
    "metrics.keys": "predict() metric keys are exactly the expected set for the situation",
    "metrics.finite": "the Trainer's own metric values (loss, runtime, throughput) are finite numbers",
    "metrics.speed": "runtime is the call's duration (see compat for the preparation time); samples_per_second = "
                     "n / runtime, steps_per_second = ceil(n / batch size) / runtime",
    "metrics.loss": "the loss is the mean per-example loss of the eval-mode forward pass",
    "metrics.values": "every compute_metrics value equals the metric recomputed from predictions and dataset labels",
    "compute_metrics.calls": "compute_metrics sees every example exactly once and is not called without labels",
    "eval_prediction.unpack": "EvalPrediction unpacks as (predictions, label_ids), + inputs, + losses if included",
    "eval_prediction.inputs": "included inputs: row i = example i's ids, the pad id to its batch's width, then -100",
    "eval_prediction.losses": "included losses: one value per example, averaging to the reported loss",
    "evaluate.keys": "evaluate() keys: predict()'s per dataset under its prefix, plus `epoch` as the version does",
    "evaluate.matches_predict": "evaluate() loss and compute_metrics values equal predict()'s on the same data",
})

# The task whose metrics compute_metrics reports, per number of labels (1 = regression).
TASK_FOR_NUM_LABELS: Mapping[int, str] = MappingProxyType({1: "syn-stsb", 2: "syn-mrpc", 3: "mnli"})
EVAL_SET_NAMES = ("validation", "validation_mismatched", "extra")  # keys of a dict of eval datasets, in order
TOKEN_RANGE = (1000, 30000)  # ordinary WordPiece ids: no [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103
LABEL_PADDING = -100  # what the Trainer pads variable-length outputs with


def violation(contract: str, message: str) -> str:
    """One broken contract as "[id] message"."""
    if contract not in CONTRACTS:
        raise KeyError(f"unknown contract id {contract!r}; known: {', '.join(CONTRACTS)}")
    return f"[{contract}] {message}"


def broken(violations: Sequence[str]) -> set[str]:
    """The contract ids named in a list of violations."""
    return {v[1:v.index("]")] for v in violations if v.startswith("[") and "]" in v}


@dataclass(frozen=True)
class DataSpec:
    """A small in-memory dataset of token ids; lengths, ids and labels follow from `seed`."""

    rows: int
    seed: int = 0
    min_length: int = 2
    max_length: int = 16
    label_column: str | None = "label"  # "label" (the hub schema; the collator renames it), "labels", or None


@dataclass(frozen=True)
class Case:
    """One contract check; its repr is valid Python, so a failing case can be pasted to reproduce it."""

    model: str = "tiny-bert"
    num_labels: int = 2  # 1 = regression
    data: tuple[DataSpec, ...] = (DataSpec(rows=13),)
    eval_dict: bool = False  # evaluate() gets {EVAL_SET_NAMES[i]: dataset i} instead of the first dataset
    eval_batch_size: int = 4
    eval_accumulation_steps: int | None = None
    compute_metrics: bool = True
    metric_key_prefix: str | None = None  # None: the Trainer's defaults ("test" for predict, "eval" for evaluate)
    batch_eval_metrics: bool = False
    include_for_metrics: tuple[str, ...] = ()  # "inputs", "loss"
    alt_batch_size: int = 1  # a second Trainer with this batch size must produce the same logits
    alt_accumulation_steps: int | None = None
    training: str = "none"  # one of TRAINING: "none", "before" (train(), then predict) or "between" (evaluate() too)


TRAINING = ("none", "before", "between")
TRAIN_DATA = DataSpec(rows=8, seed=99)  # what train() sees (max_steps=1) in the "before"/"between" cases


@dataclass(frozen=True)
class Rows:
    ids: list[list[int]]
    labels: list[int] | list[float] | None


def build_rows(spec: DataSpec, num_labels: int) -> Rows:
    """Token ids of seeded random lengths and labels (classes, or scores on a 1/8 grid exact in float32)."""
    rng = np.random.default_rng(spec.seed)
    lengths = rng.integers(spec.min_length, spec.max_length + 1, size=spec.rows)
    ids = [[int(t) for t in rng.integers(*TOKEN_RANGE, size=int(n))] for n in lengths]
    if spec.label_column is None:
        return Rows(ids, None)
    if num_labels == 1:
        return Rows(ids, [float(v) / 8 for v in rng.integers(0, 41, size=spec.rows)])
    return Rows(ids, [int(v) for v in rng.integers(0, num_labels, size=spec.rows)])


def to_dataset(rows: Rows, label_column: str | None) -> Any:
    import datasets

    columns: dict[str, list] = {"input_ids": rows.ids, "attention_mask": [[1] * len(x) for x in rows.ids]}
    if label_column is not None and rows.labels is not None:
        columns[label_column] = rows.labels
    return datasets.Dataset.from_dict(columns)


def contract_task(num_labels: int) -> TaskSpec:
    if num_labels not in TASK_FOR_NUM_LABELS:
        raise ValueError(f"num_labels must be one of {sorted(TASK_FOR_NUM_LABELS)}, got {num_labels}")
    return get_task(TASK_FOR_NUM_LABELS[num_labels])


def eval_set_names(case: Case) -> tuple[str, ...]:
    if len(case.data) > len(EVAL_SET_NAMES):
        raise ValueError(f"a case has at most {len(EVAL_SET_NAMES)} datasets, got {len(case.data)}")
    return EVAL_SET_NAMES[:len(case.data)]


def reproduce_snippet(case: Case) -> str:
    return f"from harness.contracts import *\nwith session() as lab:\n    print(lab.check({case!r}))"


def format_failure(case: Case, violations: Sequence[str]) -> str:
    lines = [f"{len(violations)} Trainer output contract(s) broken for {case.model}:"]
    lines += [f"  {v}" for v in violations]
    lines += ["reproduce with:", *(f"  {line}" for line in reproduce_snippet(case).splitlines())]
    return "\n".join(lines)
