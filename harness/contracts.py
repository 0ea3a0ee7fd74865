"""Trainer.predict()/evaluate() output contracts: cases, checks, observed snapshots and their diff.

A `Case` is everything one check needs: a tiny model, small in-memory datasets of token ids (`DataSpec`) and the
evaluation arguments. `ContractSession.check(case)` drives the real Trainer and returns the broken contracts as
messages "[<contract id>] what broke" (ids in `CONTRACTS`). The contract suite (hypothesis, suites/) and the
fault-injection tests (tests/) call the same checks.

`observe(session)` records what the installed transformers does in fixed situations (metric keys, dtypes, shapes,
None-ness, padding values, argument signatures) as a versioned snapshot under results/contracts/; `diff(a, b)` lists
every change between two snapshots. `harness contracts snapshot | diff` is the command line (`add_cli`).

Per-version expectations come from harness.compat; this module imports neither pytest nor hypothesis.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import enum
import inspect
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from harness import __version__ as HARNESS_VERSION
from harness import compat, metrics, models
from harness.env import package_versions
from harness.results import SchemaError, write_json_atomic
from harness.tasks import TaskSpec, get_task

# ---------------------------------------------------------------------------------------------- the contracts

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
LOGITS_RTOL, LOGITS_ATOL = 1e-4, 1e-5  # batched and padded vs alone: float32 reassociation only


def violation(contract: str, message: str) -> str:
    """One broken contract as "[id] message"."""
    if contract not in CONTRACTS:
        raise KeyError(f"unknown contract id {contract!r}; known: {', '.join(CONTRACTS)}")
    return f"[{contract}] {message}"


def broken(violations: Sequence[str]) -> set[str]:
    """The contract ids named in a list of violations."""
    return {v[1:v.index("]")] for v in violations if v.startswith("[") and "]" in v}


# ---------------------------------------------------------------------------------------------- cases


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


# ---------------------------------------------------------------------------------------------- compute_metrics probe


def _numpy(value: Any) -> Any:
    if value is None or isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch tensors (batch_eval_metrics passes them as they come)
        return value.detach().cpu().numpy()
    return value


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
class MetricsProbe:
    """compute_metrics for the suite: records each call, returns the task's metrics (harness.metrics.compute).

    Reads EvalPrediction by attribute, so it works with include_for_metrics; with batch_eval_metrics it
    accumulates batches and reports when `compute_result` is true, as the Trainer documents.
    """

    task: TaskSpec
    calls: list[MetricsCall] = field(default_factory=list)
    _pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def reset(self) -> None:
        self.calls.clear()
        self._pending.clear()

    def __call__(self, eval_pred: Any, compute_result: bool | None = None) -> dict[str, float]:
        elements = tuple(eval_pred)
        parts = {name: getattr(eval_pred, name, None) for name in ("predictions", "label_ids", "inputs", "losses")}
        self.calls.append(MetricsCall(
            arity=len(elements),
            unpacks_as_pair=len(elements) >= 2 and elements[0] is parts["predictions"]
            and elements[1] is parts["label_ids"],
            types={name: type(value).__name__ for name, value in parts.items()},
            predictions=_numpy(parts["predictions"]), label_ids=_numpy(parts["label_ids"]),
            inputs=parts["inputs"] if isinstance(parts["inputs"], Mapping) else _numpy(parts["inputs"]),
            losses=_numpy(parts["losses"]), compute_result=compute_result))
        call = self.calls[-1]
        if call.label_ids is None or call.predictions is None:
            return {}
        if compute_result is None:
            return self._metrics(call.predictions, call.label_ids)
        self._pending.append((call.predictions, call.label_ids))
        if not compute_result:
            return {}
        logits = np.concatenate([p for p, _ in self._pending])
        labels = np.concatenate([y for _, y in self._pending])
        self._pending.clear()
        return self._metrics(logits, labels)

    def _metrics(self, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        predicted = metrics.logits_to_predictions(self.task, logits)
        return metrics.compute(self.task, predictions=predicted, references=np.asarray(labels).reshape(-1))


# ---------------------------------------------------------------------------------------------- references


def reference_logits(model: Any, ids: Sequence[Sequence[int]]) -> np.ndarray:
    """The eval-mode forward pass of each example alone (no padding, no batching): the ground truth for order."""
    import torch

    model.eval()
    with torch.no_grad():
        rows = [model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x), dtype=torch.long)).logits[0]
                for x in ids]
    return torch.stack(rows).numpy()


def reference_loss(logits: np.ndarray, labels: Sequence[float], *, regression: bool) -> float:
    """Mean per-example loss: squared error for regression, cross-entropy otherwise (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    if regression:
        return float(np.mean((x[:, 0] - np.asarray(labels, dtype=np.float64)) ** 2))
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(x)), np.asarray(labels, dtype=np.int64)]))


def independent_metrics(task: TaskSpec, logits: np.ndarray, labels: Sequence[float]) -> dict[str, float]:
    """The task's metrics from scikit-learn / scipy, not harness.metrics; nan where a metric is undefined."""
    from scipy import stats
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    refs = np.asarray(labels)
    if task.is_regression:
        scores = np.asarray(logits, dtype=np.float64)[:, 0]
        undefined = len(refs) < 2 or np.all(scores == scores[0]) or np.all(refs == refs[0])
        formulas: dict[str, Callable[[], float]] = {
            "pearson": lambda: math.nan if undefined else float(stats.pearsonr(scores, refs)[0]),
            "spearmanr": lambda: math.nan if undefined else float(stats.spearmanr(scores, refs)[0])}
    else:
        predicted = np.argmax(logits, axis=-1)
        formulas = {"accuracy": lambda: float(accuracy_score(refs, predicted)),
                    "f1": lambda: float(f1_score(refs, predicted, labels=[0, 1], pos_label=1, zero_division=0.0)),
                    "matthews_correlation": lambda: float(matthews_corrcoef(refs, predicted))}
    found = {m: formulas[m]() for m in task.metrics if m != metrics.COMBINED}
    if metrics.COMBINED in task.metrics:
        found[metrics.COMBINED] = float(np.mean(list(found.values())))
    return {m: found[m] for m in task.metrics}


def _same_value(a: Any, b: Any, *, rel: float = 1e-6) -> bool:
    """Equal within `rel` relative (1e-9 absolute); nan matches only nan."""
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# ---------------------------------------------------------------------------------------------- expectations


def expected_metric_keys(*, prefix: str, has_labels: bool, metric_names: Sequence[str],
                         trained_before_first_eval: bool = False) -> set[str]:
    """The exact keys of predict() (and of evaluate() per dataset, `epoch` aside) for one situation."""
    keys = {"runtime", "samples_per_second", "steps_per_second"}
    if has_labels:
        keys |= {"loss", *metric_names}
    if compat.reports_model_preparation_time(trained_before_first_eval=trained_before_first_eval):
        keys.add("model_preparation_time")
    return {f"{prefix}_{k}" for k in keys}


def _trainer_keys(prefix: str) -> tuple[str, ...]:
    """The keys the Trainer computes itself (compute_metrics aside)."""
    return tuple(f"{prefix}_{k}" for k in ("loss", "runtime", "samples_per_second", "steps_per_second",
                                           "model_preparation_time"))


# ---------------------------------------------------------------------------------------------- pure checks


def check_prediction_output(output: Any) -> list[str]:
    from transformers.trainer_utils import PredictionOutput

    fields = getattr(output, "_fields", None)
    if isinstance(output, PredictionOutput) and fields == ("predictions", "label_ids", "metrics"):
        return []
    return [violation("predict.type", f"predict() returned {type(output).__name__} with fields {fields}, not "
                                      "PredictionOutput(predictions, label_ids, metrics)")]


def _row_mismatch(predictions: np.ndarray, reference: np.ndarray) -> str:
    """Where predictions and the per-example reference first disagree, and whether the row belongs elsewhere."""
    close = np.isclose(predictions, reference, rtol=LOGITS_RTOL, atol=LOGITS_ATOL).all(axis=1)
    row = int(np.flatnonzero(~close)[0])
    gap = float(np.max(np.abs(predictions[row] - reference[row])))
    elsewhere = np.flatnonzero(np.isclose(predictions[row], reference, rtol=LOGITS_RTOL, atol=LOGITS_ATOL).all(axis=1))
    where = (f"; it is example {int(elsewhere[0])}'s: rows are out of dataset order" if len(elsewhere)
             else "; it matches no example: wrong mode (dropout on?) or wrong inputs")
    return f"{int((~close).sum())} of {len(close)} rows differ, first row {row} by {gap:.3g}{where}"


def check_predictions(predictions: Any, reference: np.ndarray, num_labels: int) -> list[str]:
    """Shape, dtype, finiteness, and equality with the per-example eval-mode forward pass, row by row."""
    n = len(reference)
    if not isinstance(predictions, np.ndarray):
        return [violation("predictions.shape", f"predictions is a {type(predictions).__name__}, not one array")]
    found: list[str] = []
    if predictions.shape != (n, num_labels):
        found.append(violation("predictions.shape", f"predictions has shape {predictions.shape} for {n} examples; "
                                                    f"expected ({n}, {num_labels})"
                               + (": the last partial batch was dropped?" if predictions.shape[:1] < (n,) else "")))
    if predictions.dtype != np.float32:
        found.append(violation("predictions.dtype", f"predictions are {predictions.dtype}, expected float32"))
    if not np.all(np.isfinite(predictions)):
        found.append(violation("predictions.finite", f"{int(np.sum(~np.isfinite(predictions)))} prediction values "
                                                     "are not finite"))
    if predictions.shape == reference.shape and not found:
        if not np.allclose(predictions, reference, rtol=LOGITS_RTOL, atol=LOGITS_ATOL):
            found.append(violation("predictions.order", "predictions differ from the per-example eval-mode "
                                                        "forward pass: " + _row_mismatch(predictions, reference)))
    return found


def check_batch_invariance(predictions: Any, other: Any, case: Case) -> list[str]:
    if not (isinstance(predictions, np.ndarray) and isinstance(other, np.ndarray)):
        return []
    if predictions.shape == other.shape and np.allclose(predictions, other, rtol=LOGITS_RTOL, atol=LOGITS_ATOL,
                                                        equal_nan=True):
        return []
    gap = (f"max |diff| {float(np.max(np.abs(predictions - other))):.3g}" if predictions.shape == other.shape
           else f"shapes {predictions.shape} vs {other.shape}")
    return [violation("predictions.batch_invariant",
                      f"logits with eval batch size {case.eval_batch_size} (accumulation "
                      f"{case.eval_accumulation_steps}) differ from batch size {case.alt_batch_size} (accumulation "
                      f"{case.alt_accumulation_steps}): {gap}")]


def check_label_ids(label_ids: Any, labels: Sequence[float] | None, *, regression: bool) -> list[str]:
    if labels is None:
        if label_ids is None:
            return []
        return [violation("label_ids.none", f"the dataset has no label column but label_ids is "
                                            f"{type(label_ids).__name__} {getattr(label_ids, 'shape', '')}")]
    if label_ids is None:
        return [violation("label_ids.values", f"label_ids is None although the dataset has {len(labels)} labels")]
    if not isinstance(label_ids, np.ndarray):
        return [violation("label_ids.values", f"label_ids is a {type(label_ids).__name__}, not an array")]
    found = []
    expected_dtype = np.float32 if regression else np.int64
    if label_ids.dtype != expected_dtype:
        found.append(violation("label_ids.dtype", f"label_ids are {label_ids.dtype}, expected "
                                                  f"{np.dtype(expected_dtype)}"))
    expected = np.asarray(labels, dtype=expected_dtype)
    if label_ids.shape != expected.shape or not np.array_equal(label_ids, expected):
        found.append(violation("label_ids.values", f"label_ids (shape {label_ids.shape}) are not the dataset "
                                                   f"labels (shape {expected.shape}) in dataset order"))
    return found


def check_metric_keys(found: Mapping[str, Any], expected: set[str], *, contract: str, situation: str) -> list[str]:
    missing, unexpected = sorted(expected - set(found)), sorted(set(found) - expected)
    if not (missing or unexpected):
        return []
    return [violation(contract, f"metric keys for {situation}: missing {missing}, unexpected {unexpected}")]


def check_finite(found: Mapping[str, Any], prefix: str, *, contract: str = "metrics.finite") -> list[str]:
    bad = {k: found[k] for k in _trainer_keys(prefix) if k in found
           and (isinstance(found[k], bool) or not isinstance(found[k], (int, float)) or not math.isfinite(found[k]))}
    return [violation(contract, f"not finite numbers: {bad}")] if bad else []


def check_speed(found: Mapping[str, Any], prefix: str, *, rows: int, batch_size: int, wall: float | None = None,
                first_call: bool = True) -> list[str]:
    """Runtime within the call's wall time, throughput = count / runtime (the Trainer rounds to 4 and 3 decimals).

    A later call's runtime is its duration minus the first call's model preparation time when compat says the
    Trainer subtracts it again: then it only has to exceed minus that time.
    """
    runtime = found.get(f"{prefix}_runtime")
    if not isinstance(runtime, (int, float)) or isinstance(runtime, bool):
        return [violation("metrics.speed", f"{prefix}_runtime is {runtime!r}, not a number")]
    stale = 0.0
    if not first_call and compat.runtime_subtracts_stale_preparation_time():
        stale = float(found.get(f"{prefix}_model_preparation_time") or 0.0)
    slack = 2e-4  # rounding of runtime and preparation time
    issues = []
    if not runtime > -stale - (slack if stale else 0.0):
        issues.append(violation("metrics.speed", f"{prefix}_runtime is {runtime}, not a positive duration"
                                                 + (f" less the stale preparation time {stale}" if stale else "")))
    if wall is not None and runtime > wall - stale + slack:
        issues.append(violation("metrics.speed", f"{prefix}_runtime is {runtime} s but the call took {wall:.4f} s"))
    for key, count in ((f"{prefix}_samples_per_second", rows), (f"{prefix}_steps_per_second",
                                                                  math.ceil(rows / batch_size))):
        rate = found.get(key)
        if not isinstance(rate, (int, float)) or not rate or abs(count / rate - runtime) > 1e-4 + 2e-3 * abs(runtime):
            issues.append(violation("metrics.speed", f"{key} = {rate!r} but {count} / {prefix}_runtime "
                                                     f"({runtime}) = {count / runtime if runtime else math.inf:.3f}"))
    return issues


def check_loss(found: Mapping[str, Any], prefix: str, expected: float) -> list[str]:
    loss = found.get(f"{prefix}_loss")
    if loss is None or _same_value(loss, expected, rel=1e-5):
        return []  # a missing loss is metrics.keys's business
    return [violation("metrics.loss", f"{prefix}_loss = {loss!r} but the mean per-example loss of the eval-mode "
                                      f"forward pass is {expected!r}")]


def check_metric_values(found: Mapping[str, Any], prefix: str, expected: Mapping[str, float]) -> list[str]:
    wrong = {name: (found.get(f"{prefix}_{name}"), value) for name, value in expected.items()
             if f"{prefix}_{name}" in found and not _same_value(found[f"{prefix}_{name}"], value)}
    if not wrong:
        return []
    shown = ", ".join(f"{prefix}_{k} = {got!r} vs {want!r}" for k, (got, want) in wrong.items())
    return [violation("metrics.values", f"compute_metrics values differ from the independent recomputation from "
                                        f"predictions and dataset labels: {shown}")]


def _identical(a: Any, b: Any) -> bool:
    """Same shape and values, nan matching nan (a nan is predictions.finite's business)."""
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # non-numeric
        return bool(np.array_equal(a, b))


def check_determinism(first: Any, second: Any, prefix: str) -> list[str]:
    def stable(m: Mapping[str, Any]) -> dict[str, Any]:
        timing = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time")
        return {k: v for k, v in m.items() if not k.endswith(timing)}

    same = (_identical(first.predictions, second.predictions)
            and (first.label_ids is None) == (second.label_ids is None)
            and (first.label_ids is None or _identical(first.label_ids, second.label_ids))
            and set(first.metrics) == set(second.metrics)
            and all(_same_value(v, second.metrics.get(k), rel=0.0) for k, v in stable(first.metrics).items()))
    if same:
        return []
    gap = ""
    if np.shape(first.predictions) == np.shape(second.predictions):
        gap = f" (max |diff| of predictions {float(np.max(np.abs(first.predictions - second.predictions))):.3g})"
    return [violation("predict.deterministic", f"two predict() calls on the same data with prefix {prefix!r} "
                                               f"differ{gap}: is dropout left on?")]


def _batches(rows: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]


def check_inputs_padding(inputs: Any, ids: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> list[str]:
    """Included inputs: example i's ids, then the pad id to its batch's width, then LABEL_PADDING to the widest."""
    if not isinstance(inputs, np.ndarray) or inputs.ndim != 2 or len(inputs) != len(ids):
        return [violation("eval_prediction.inputs", f"inputs should be one row per example, got "
                                                    f"{type(inputs).__name__} {getattr(inputs, 'shape', '')}")]
    width = max(len(x) for x in ids)
    if inputs.shape[1] != width:
        return [violation("eval_prediction.inputs", f"inputs are {inputs.shape[1]} wide, the longest example "
                                                    f"has {width} tokens")]
    for batch in _batches(len(ids), batch_size):
        batch_width = max(len(ids[i]) for i in batch)
        for i in batch:
            expected = list(ids[i]) + [pad_id] * (batch_width - len(ids[i])) + [LABEL_PADDING] * (width - batch_width)
            if inputs[i].tolist() != expected:
                return [violation("eval_prediction.inputs", f"inputs row {i} is {inputs[i].tolist()}, expected "
                                                            f"{expected} (ids, pad {pad_id}, then {LABEL_PADDING})")]
    return []


def check_metrics_calls(calls: Sequence[MetricsCall], case: Case, *, ids: Sequence[Sequence[int]],
                        labels: Sequence[float] | None, predictions: Any, loss: Any, pad_id: int) -> list[str]:
    """What one predict() passed to compute_metrics: how often, how it unpacks, and what it holds."""
    n = len(ids)
    if labels is None:
        return [violation("compute_metrics.calls", f"compute_metrics was called {len(calls)} time(s) for a dataset "
                                                   "without labels")] if calls else []
    found: list[str] = []
    arity = compat.eval_prediction_arity(case.include_for_metrics)
    bad = [c.arity for c in calls if c.arity != arity or not c.unpacks_as_pair]
    if bad:
        found.append(violation("eval_prediction.unpack", f"EvalPrediction unpacked into {bad[0]} element(s) (or not "
                                                         f"as (predictions, label_ids, ...)); expected {arity} for "
                                                         f"include_for_metrics={list(case.include_for_metrics)}"))
    batches = _batches(n, case.eval_batch_size)
    if case.batch_eval_metrics:
        flags = [c.compute_result for c in calls]
        expected_flags = [False] * (len(batches) - 1) + [True]
        if flags != expected_flags:
            found.append(violation("compute_metrics.calls", f"batch_eval_metrics: compute_result was {flags} over "
                                                            f"{len(batches)} batches, expected {expected_flags}"))
    elif len(calls) != 1:
        found.append(violation("compute_metrics.calls", f"compute_metrics was called {len(calls)} times, expected "
                                                        "once"))
    if not calls or found:
        return found
    seen_preds = np.concatenate([np.asarray(c.predictions) for c in calls])
    seen_labels = np.concatenate([np.asarray(c.label_ids).reshape(-1) for c in calls])
    if (seen_preds.shape != np.shape(predictions) or not np.allclose(seen_preds, predictions)
            or not np.array_equal(seen_labels, np.asarray(labels, dtype=seen_labels.dtype))):
        found.append(violation("compute_metrics.calls", f"compute_metrics saw {len(seen_preds)} predictions and "
                                                        f"labels that are not the {n} returned by predict(), in order"))
    if "inputs" in case.include_for_metrics:
        if case.batch_eval_metrics:
            shapes = [np.shape(_numpy(c.inputs.get("input_ids"))) if isinstance(c.inputs, Mapping) else None
                      for c in calls]
            expected_shapes = [(len(b), max(len(ids[i]) for i in b)) for b in batches]
            if shapes != expected_shapes:
                found.append(violation("eval_prediction.inputs", f"batch_eval_metrics: inputs['input_ids'] shapes "
                                                                 f"{shapes}, expected the batches {expected_shapes}"))
        else:
            found += check_inputs_padding(calls[0].inputs, ids, case.eval_batch_size, pad_id)
    if "loss" in case.include_for_metrics:
        losses = np.concatenate([np.asarray(c.losses).reshape(-1) for c in calls if c.losses is not None] or [[]])
        if len(losses) != n or (loss is not None and not _same_value(float(np.mean(losses)), loss, rel=1e-5)):
            found.append(violation("eval_prediction.losses", f"{len(losses)} included losses for {n} examples, "
                                                             f"mean {float(np.mean(losses)) if len(losses) else None}"
                                                             f" vs reported loss {loss}"))
    return found


# ---------------------------------------------------------------------------------------------- the session


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from two, and on a shared 2-core machine a second OpenMP thread
    that gets descheduled turns a 20 µs matmul into 8 ms (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ContractSession:
    """Tiny models loaded once per (model, num_labels) and a scratch folder; checks one `Case` at a time."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self._loaded: dict[tuple[str, int], models.LoadedModel] = {}

    def loaded(self, model: str, num_labels: int) -> models.LoadedModel:
        """The model with a seeded classifier head, in eval mode; shared: never train it (see `fresh`)."""
        import torch

        key = (model, num_labels)
        if key not in self._loaded:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self._loaded[key] = models.load(models.get_model(model), contract_task(num_labels))
        self._loaded[key].model.eval()
        return self._loaded[key]

    def preload(self, model_names: Sequence[str]) -> None:
        """Load each model for every num_labels now, so that no example pays for it (deadlines stay meaningful)."""
        for name in model_names:
            for num_labels in TASK_FOR_NUM_LABELS:
                self.loaded(name, num_labels)

    def fresh(self, model: str, num_labels: int) -> Any:
        """A private copy of the model, for situations that train it."""
        return copy.deepcopy(self.loaded(model, num_labels).model)

    def trainer(self, case: Case, *, batch_size: int, accumulation: int | None, compute_metrics: Any = None,
                model: Any = None, train_dataset: Any = None, eval_dataset: Any = None, max_steps: int = -1) -> Any:
        from transformers import DataCollatorWithPadding

        loaded = self.loaded(case.model, case.num_labels)
        args = compat.training_arguments(
            output_dir=str(self.workdir / "trainer"), per_device_eval_batch_size=batch_size,
            per_device_train_batch_size=batch_size, max_steps=max_steps, eval_accumulation_steps=accumulation,
            batch_eval_metrics=case.batch_eval_metrics, save_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=True, dataloader_pin_memory=False, **compat.include_for_metrics_arguments(case.include_for_metrics))
        return compat.trainer(model=model if model is not None else loaded.model, args=args,
                              tokenizer=loaded.tokenizer, data_collator=DataCollatorWithPadding(loaded.tokenizer),
                              compute_metrics=compute_metrics, train_dataset=train_dataset, eval_dataset=eval_dataset)

    def check(self, case: Case) -> list[str]:
        """Every broken contract for `case`: predict() on each dataset, then evaluate() on all of them."""
        if case.training not in TRAINING:
            raise ValueError(f"Case.training must be one of {TRAINING}, got {case.training!r}")
        task = contract_task(case.num_labels)
        loaded = self.loaded(case.model, case.num_labels)
        names = eval_set_names(case)
        rows = [build_rows(spec, case.num_labels) for spec in case.data]
        sets = [to_dataset(r, spec.label_column) for r, spec in zip(rows, case.data)]
        probe = MetricsProbe(task) if case.compute_metrics else None
        model = loaded.model if case.training == "none" else self.fresh(case.model, case.num_labels)
        training_set = to_dataset(build_rows(TRAIN_DATA, case.num_labels), "label")
        trainer = self.trainer(case, batch_size=case.eval_batch_size, accumulation=case.eval_accumulation_steps,
                               compute_metrics=probe, model=model, train_dataset=training_set, max_steps=1)
        alt = self.trainer(case, batch_size=case.alt_batch_size, accumulation=case.alt_accumulation_steps,
                           model=model)
        predict_prefix = case.metric_key_prefix or "test"
        kwargs = {"metric_key_prefix": case.metric_key_prefix} if case.metric_key_prefix else {}
        found: list[str] = []
        try:
            if case.training == "between":
                trainer.evaluate(sets[0])
            if case.training != "none":
                trainer.train()
        except Exception as err:  # noqa: BLE001 - any exception breaks the contract; say which
            return [violation("trainer.raised", f"training before predict() raised {type(err).__name__}: {err}")]
        outputs: dict[str, Any] = {}
        for index, (name, data, dataset) in enumerate(zip(names, rows, sets)):
            where = f" ({name})" if len(names) > 1 else ""
            if probe is not None:
                probe.reset()
            model.train()  # as train() leaves it: predict() must switch to eval mode itself
            try:
                started = time.perf_counter()
                first = trainer.predict(dataset, **kwargs)
                wall = time.perf_counter() - started
                calls = list(probe.calls) if probe is not None else []
                second = trainer.predict(dataset, **kwargs)
                other = alt.predict(dataset, **kwargs)
            except Exception as err:  # noqa: BLE001
                found.append(violation("trainer.raised", f"predict(){where} raised {type(err).__name__}: {err}"))
                continue
            if not all(hasattr(out, "predictions") and hasattr(out, "metrics") for out in (first, second, other)):
                found.append(violation("predict.type", f"predict(){where} returned {type(first).__name__}, "
                                                       "not PredictionOutput(predictions, label_ids, metrics)"))
                continue
            outputs[name] = first
            reference = reference_logits(model, data.ids)  # after predict(), which must not rely on it
            issues = self._check_predict(case, task, first, reference, data, calls, predict_prefix,
                                         loaded.tokenizer.pad_token_id, wall=wall,
                                         first_call=index == 0 and case.training != "between")
            issues += check_determinism(first, second, predict_prefix)
            issues += check_batch_invariance(first.predictions, other.predictions, case)
            found += [f"{issue}{where}" for issue in issues]
        if len(outputs) == len(names):
            found += self._check_evaluate(case, trainer, probe, dict(zip(names, sets)), rows, outputs, predict_prefix)
        return found

    def _check_predict(self, case: Case, task: TaskSpec, output: Any, reference: np.ndarray, data: Rows,
                       calls: list[MetricsCall], prefix: str, pad_id: int, *, wall: float,
                       first_call: bool) -> list[str]:
        found = check_prediction_output(output)
        predictions = getattr(output, "predictions", None)
        label_ids = getattr(output, "label_ids", None)
        found_metrics = getattr(output, "metrics", None)
        if not isinstance(found_metrics, Mapping):
            return [*found, violation("metrics.keys", f"predict() metrics is {type(found_metrics).__name__}")]
        found += check_predictions(predictions, reference, case.num_labels)
        found += check_label_ids(label_ids, data.labels, regression=task.is_regression)
        has_labels = data.labels is not None
        names = task.metrics if case.compute_metrics else ()
        expected = expected_metric_keys(prefix=prefix, has_labels=has_labels, metric_names=names,
                                        trained_before_first_eval=case.training == "before")
        found += check_metric_keys(found_metrics, expected, contract="metrics.keys",
                                   situation=f"predict(labels={has_labels}, compute_metrics={case.compute_metrics}, "
                                             f"prefix={prefix!r}, training={case.training!r})")
        found += check_finite(found_metrics, prefix)
        found += check_speed(found_metrics, prefix, rows=len(data.ids), batch_size=case.eval_batch_size, wall=wall,
                             first_call=first_call)
        if has_labels:
            found += check_loss(found_metrics, prefix, reference_loss(reference, data.labels,
                                                                      regression=task.is_regression))
        if has_labels and case.compute_metrics and np.shape(predictions) == reference.shape:
            found += check_metric_values(found_metrics, prefix, independent_metrics(task, predictions, data.labels))
        if case.compute_metrics:
            found += check_metrics_calls(calls, case, ids=data.ids, labels=data.labels, predictions=predictions,
                                         loss=found_metrics.get(f"{prefix}_loss"), pad_id=pad_id)
        return found

    def _check_evaluate(self, case: Case, trainer: Any, probe: MetricsProbe | None, sets: Mapping[str, Any],
                        rows: Sequence[Rows], outputs: Mapping[str, Any], predict_prefix: str) -> list[str]:
        task = contract_task(case.num_labels)
        prefix = case.metric_key_prefix or "eval"
        kwargs = {"metric_key_prefix": case.metric_key_prefix} if case.metric_key_prefix else {}
        if probe is not None:
            probe.reset()
        try:
            started = time.perf_counter()
            found_metrics = trainer.evaluate(dict(sets) if case.eval_dict else next(iter(sets.values())), **kwargs)
            wall = time.perf_counter() - started
        except Exception as err:  # noqa: BLE001
            return [violation("trainer.raised", f"evaluate() raised {type(err).__name__}: {err}")]
        if not isinstance(found_metrics, Mapping):
            return [violation("evaluate.keys", f"evaluate() returned {type(found_metrics).__name__}, not a dict")]
        names = list(sets) if case.eval_dict else list(sets)[:1]
        metric_names = task.metrics if case.compute_metrics else ()
        expected: set[str] = set()
        found: list[str] = []
        for name, data in zip(names, rows):
            scoped = f"{prefix}_{name}" if case.eval_dict else prefix
            expected |= expected_metric_keys(prefix=scoped, has_labels=data.labels is not None,
                                             metric_names=metric_names,
                                             trained_before_first_eval=case.training == "before")
            found += check_finite(found_metrics, scoped)
            found += check_speed(found_metrics, scoped, rows=len(data.ids), batch_size=case.eval_batch_size,
                                 wall=wall, first_call=False)
            predicted = outputs[name].metrics
            pairs = [(f"{scoped}_{m}", f"{predict_prefix}_{m}") for m in ("loss", *metric_names)]
            wrong = {ours: (found_metrics.get(ours), predicted.get(theirs)) for ours, theirs in pairs
                     if ours in found_metrics and theirs in predicted
                     and not _same_value(found_metrics[ours], predicted[theirs], rel=1e-6)}
            if wrong:
                found.append(violation("evaluate.matches_predict", f"evaluate() and predict() disagree on the same "
                                                                   f"data: {wrong}"))
        if compat.evaluate_reports_epoch_key(trained=case.training != "none"):
            expected.add("epoch")
        situation = (f"evaluate({'dict of ' + str(len(names)) if case.eval_dict else 'one dataset'}, "
                     f"compute_metrics={case.compute_metrics}, prefix={prefix!r}, training={case.training!r}) on "
                     f"transformers "
                     f"{compat.TRANSFORMERS_VERSION}")
        found += check_metric_keys(found_metrics, expected, contract="evaluate.keys", situation=situation)
        return found


@contextlib.contextmanager
def session(workdir: Path | None = None) -> Iterator[ContractSession]:
    """A ContractSession on one torch thread, with a scratch folder (temporary unless given)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-contracts-")))
        stack.enter_context(single_thread())
        yield ContractSession(workdir)


# ---------------------------------------------------------------------------------------------- observation

SNAPSHOT_SCHEMA_VERSION = 1
SNAPSHOT_LIBRARIES = ("transformers", "torch", "accelerate", "datasets", "tokenizers", "numpy")
_SNAPSHOT_DATA = DataSpec(rows=5, seed=1, min_length=2, max_length=12)  # batches of 2: widths differ, last is partial
_SNAPSHOT_UNLABELED = dataclasses.replace(_SNAPSHOT_DATA, label_column=None)


def _describe_array(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        return {"type": type(value).__name__}
    return {"type": "ndarray", "dtype": str(value.dtype), "shape": list(value.shape)}


def _describe_calls(calls: Sequence[MetricsCall]) -> dict[str, Any]:
    described: dict[str, Any] = {"calls": len(calls)}
    if calls:
        described.update({"arity": calls[0].arity, "unpacks_as_pair": calls[0].unpacks_as_pair,
                          "types": calls[0].types, "compute_result": [c.compute_result for c in calls]})
        if isinstance(calls[0].inputs, np.ndarray):
            described["inputs"] = _describe_array(calls[0].inputs)
        if isinstance(calls[0].losses, np.ndarray):
            described["losses"] = _describe_array(calls[0].losses)
    return described


def _padding_values(inputs: np.ndarray, ids: Sequence[Sequence[int]], batch_size: int) -> dict[str, list[int]]:
    """Values found after each example's ids: within its batch's width, and beyond it (variable-length outputs)."""
    within: set[int] = set()
    beyond: set[int] = set()
    for batch in _batches(len(ids), batch_size):
        batch_width = max(len(ids[i]) for i in batch)
        for i in batch:
            within |= set(inputs[i, len(ids[i]):batch_width].tolist())
            beyond |= set(inputs[i, batch_width:].tolist())
    return {"within_batch": sorted(within), "beyond_batch": sorted(beyond)}


def _observe_predict(lab: ContractSession, case: Case, *, train_first: bool = False) -> dict[str, Any]:
    task = contract_task(case.num_labels)
    probe = MetricsProbe(task) if case.compute_metrics else None
    rows = build_rows(case.data[0], case.num_labels)
    dataset = to_dataset(rows, case.data[0].label_column)
    trainer = lab.trainer(case, batch_size=case.eval_batch_size, accumulation=None, compute_metrics=probe,
                          model=lab.fresh(case.model, case.num_labels) if train_first else None,
                          train_dataset=to_dataset(build_rows(_SNAPSHOT_DATA, case.num_labels), "label"),
                          max_steps=1)
    if train_first:
        trainer.train()
    if probe is not None:
        probe.reset()
    output = trainer.predict(dataset, **({"metric_key_prefix": case.metric_key_prefix}
                                         if case.metric_key_prefix else {}))
    observed = {"type": type(output).__name__, "fields": list(getattr(output, "_fields", ())),
                "predictions": _describe_array(output.predictions), "label_ids": _describe_array(output.label_ids),
                "metric_keys": sorted(output.metrics)}
    if probe is not None:
        observed["compute_metrics"] = _describe_calls(probe.calls)
        if probe.calls and isinstance(probe.calls[0].inputs, np.ndarray):
            observed["inputs_padding"] = _padding_values(probe.calls[0].inputs, rows.ids, case.eval_batch_size)
    return observed


def _observe_evaluate(lab: ContractSession, case: Case, *, train: str = "never") -> dict[str, Any]:
    """`train`: "never", "before" (train(), then evaluate) or "between" (evaluate, train(), evaluate)."""
    task = contract_task(case.num_labels)
    probe = MetricsProbe(task) if case.compute_metrics else None
    sets = {name: to_dataset(build_rows(spec, case.num_labels), spec.label_column)
            for name, spec in zip(eval_set_names(case), case.data)}
    trainer = lab.trainer(case, batch_size=case.eval_batch_size, accumulation=None, compute_metrics=probe,
                          model=lab.fresh(case.model, case.num_labels) if train != "never" else None,
                          train_dataset=to_dataset(build_rows(_SNAPSHOT_DATA, case.num_labels), "label"),
                          max_steps=1)
    target = sets if case.eval_dict else next(iter(sets.values()))
    if train == "between":
        trainer.evaluate(target)
    if train != "never":
        trainer.train()
    if probe is not None:
        probe.reset()
    found = trainer.evaluate(target, **({"metric_key_prefix": case.metric_key_prefix}
                                        if case.metric_key_prefix else {}))
    observed: dict[str, Any] = {"metric_keys": sorted(found)}
    if probe is not None:
        observed["compute_metrics"] = _describe_calls(probe.calls)
    return observed


def _predict_situations() -> dict[str, tuple[Case, bool]]:
    base = Case(model="tiny-bert", data=(_SNAPSHOT_DATA,), eval_batch_size=2)
    regression = dataclasses.replace(base, num_labels=1)
    with_labels_column = (dataclasses.replace(_SNAPSHOT_DATA, label_column="labels"),)
    return {
        "predict 2 labels": (base, False),
        "predict 2 labels, column 'labels', no compute_metrics": (
            dataclasses.replace(base, data=with_labels_column, compute_metrics=False), False),
        "predict 2 labels, no label column": (dataclasses.replace(base, data=(_SNAPSHOT_UNLABELED,)), False),
        "predict 3 labels": (dataclasses.replace(base, num_labels=3), False),
        "predict regression": (regression, False),
        "predict regression, no label column": (dataclasses.replace(regression, data=(_SNAPSHOT_UNLABELED,)), False),
        "predict metric_key_prefix 'val'": (dataclasses.replace(base, metric_key_prefix="val"), False),
        "predict include_for_metrics inputs+loss": (
            dataclasses.replace(base, include_for_metrics=("inputs", "loss")), False),
        "predict batch_eval_metrics": (dataclasses.replace(base, batch_eval_metrics=True), False),
        "predict batch_eval_metrics, include_for_metrics inputs+loss": (
            dataclasses.replace(base, batch_eval_metrics=True, include_for_metrics=("inputs", "loss")), False),
        "predict after train()": (base, True),
    }


def _evaluate_situations() -> dict[str, tuple[Case, str]]:
    base = Case(model="tiny-bert", data=(_SNAPSHOT_DATA,), eval_batch_size=2)
    two = (_SNAPSHOT_DATA, dataclasses.replace(_SNAPSHOT_DATA, rows=3, seed=2))
    return {
        "evaluate 2 labels": (base, "never"),
        "evaluate no compute_metrics": (dataclasses.replace(base, compute_metrics=False), "never"),
        "evaluate no label column": (dataclasses.replace(base, data=(_SNAPSHOT_UNLABELED,)), "never"),
        "evaluate metric_key_prefix 'val'": (dataclasses.replace(base, metric_key_prefix="val"), "never"),
        "evaluate dict of two datasets": (dataclasses.replace(base, data=two, eval_dict=True), "never"),
        "evaluate batch_eval_metrics, dict of two datasets": (
            dataclasses.replace(base, data=two, eval_dict=True, batch_eval_metrics=True), "never"),
        "evaluate after train()": (base, "before"),
        "evaluate before and after train()": (base, "between"),
    }


def _json_default(value: Any) -> Any:
    """A signature default as JSON: enums by value, containers recursively, other objects by type name."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_json_default(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_default(v) for k, v in value.items()}
    return f"<{type(value).__name__}>"


def _deprecated_aliases(function: Callable[..., Any]) -> dict[str, str | None]:
    """Old keyword names a `deprecate_kwarg` wrapper still accepts (invisible to inspect.signature): old -> new."""
    aliases: dict[str, str | None] = {}
    while function is not None:
        try:
            found = inspect.getclosurevars(function).nonlocals
        except (TypeError, ValueError):
            break
        if isinstance(found.get("old_name"), str):
            aliases[found["old_name"]] = found.get("new_name")
        function = getattr(function, "__wrapped__", None)
    return aliases


def _signature(function: Callable[..., Any]) -> dict[str, Any]:
    """name -> {"kind", "default"} per parameter; deprecated aliases as kind "deprecated_alias" with `alias_of`."""
    found: dict[str, Any] = {}
    for name, param in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        default = "<required>" if param.default is inspect.Parameter.empty else _json_default(param.default)
        found[name] = {"kind": param.kind.name.lower(), "default": default}
    for old, new in _deprecated_aliases(function).items():
        found.setdefault(old, {"kind": "deprecated_alias", "default": None, "alias_of": new})
    return found


def _training_arguments_signature() -> dict[str, Any]:
    """TrainingArguments' init fields with their defaults (factories called: `<factory>` says nothing)."""
    import transformers

    found = {}
    for spec in dataclasses.fields(transformers.TrainingArguments):
        if not spec.init:
            continue
        if spec.default is not dataclasses.MISSING:
            default = _json_default(spec.default)
        elif spec.default_factory is not dataclasses.MISSING:
            default = _json_default(spec.default_factory())
        else:
            default = "<required>"
        found[spec.name] = {"kind": "keyword", "default": default}
    return found


def signatures() -> dict[str, dict[str, Any]]:
    import transformers
    from transformers.trainer_utils import EvalPrediction

    return {"TrainingArguments": _training_arguments_signature(),
            "Trainer.__init__": _signature(transformers.Trainer.__init__),
            "Trainer.predict": _signature(transformers.Trainer.predict),
            "Trainer.evaluate": _signature(transformers.Trainer.evaluate),
            "EvalPrediction.__init__": _signature(EvalPrediction.__init__)}


def library_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **package_versions(SNAPSHOT_LIBRARIES)}


def observe(lab: ContractSession) -> dict[str, Any]:
    """The observed contract of the installed libraries, as a snapshot payload (schema documented inline)."""
    situations: dict[str, Any] = {}
    for name, (case, trained) in _predict_situations().items():
        situations[name] = _observe_predict(lab, case, train_first=trained)
    for name, (case, train) in _evaluate_situations().items():
        situations[name] = _observe_evaluate(lab, case, train=train)
    return {
        "schema_version": SNAPSHOT_SCHEMA_VERSION,  # of this layout; load_snapshot refuses others
        "written_by": f"harness {HARNESS_VERSION} (harness.contracts.observe)",
        "libraries": library_versions(),  # python and the libraries the contract depends on
        # Fixed situations on tiny-bert, 5 rows (lengths vary) in batches of 2; per situation: output type and
        # fields, predictions / label_ids dtype and shape (null = None), metric keys, what compute_metrics saw
        # (calls, EvalPrediction arity and element types, compute_result flags), padding of included inputs.
        "situations": situations,
        # name -> {"kind", "default"} per argument: TrainingArguments fields, Trainer.__init__/predict/evaluate.
        "signatures": signatures(),
    }


# ---------------------------------------------------------------------------------------------- snapshots on disk


def snapshot_path(root: Path, transformers_version: str) -> Path:
    return Path(root) / f"transformers-{transformers_version}.json"


def write_snapshot(payload: Mapping[str, Any], path: Path) -> Path:
    return write_json_atomic(Path(path), payload)


def load_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot file, or SchemaError saying what to do."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path} does not exist. Record one with `harness contracts snapshot --output {path}` "
                          "under the transformers version it should describe.") from None
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path} is not valid JSON ({err}). Restore it from version control or re-record it "
                          "with `harness contracts snapshot`.") from err
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError(f"{path} has no integer 'schema_version'; it is not a contract snapshot. Re-record it "
                          "with `harness contracts snapshot`.")
    if version > SNAPSHOT_SCHEMA_VERSION:
        raise SchemaError(f"{path} has schema_version {version}, newer than this harness reads "
                          f"({SNAPSHOT_SCHEMA_VERSION}). Upgrade the harness to read it.")
    if version < SNAPSHOT_SCHEMA_VERSION:
        raise SchemaError(f"{path} has schema_version {version}, older than this harness reads "
                          f"({SNAPSHOT_SCHEMA_VERSION}) and there is no migration. Re-record it with "
                          "`harness contracts snapshot` under the transformers version it describes.")
    for key in ("libraries", "situations", "signatures"):
        if not isinstance(payload.get(key), dict):
            raise SchemaError(f"{path} lacks the '{key}' object of a version {version} snapshot. Re-record it with "
                              "`harness contracts snapshot`.")
    return payload


def resolve_snapshot(name: str, root: Path) -> Path:
    """A snapshot file path, or a transformers version with a snapshot under `root`."""
    path = Path(name)
    if path.suffix == ".json" or path.exists():
        return path
    candidate = snapshot_path(root, name)
    if candidate.exists():
        return candidate
    available = sorted(p.stem.removeprefix("transformers-") for p in Path(root).glob("transformers-*.json"))
    raise SchemaError(f"No contract snapshot {name!r}: neither a file nor a version under {root}. "
                      f"Available versions: {', '.join(available) or 'none'}.")


# ---------------------------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    section: str  # a situation name or a signature name
    what: str

    def __str__(self) -> str:
        return f"{self.section}: {self.what}"


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _diff_values(section: str, path: str, old: Any, new: Any) -> list[Change]:
    """Leaf-by-leaf differences; string lists (metric keys, fields) as added/removed items."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                changes.append(Change(section, f"{where} removed (was {_show(old[key])})"))
            elif key not in old:
                changes.append(Change(section, f"{where} added ({_show(new[key])})"))
            else:
                changes += _diff_values(section, where, old[key], new[key])
        return changes
    if old == new:
        return []
    if (isinstance(old, list) and isinstance(new, list) and path.endswith(("metric_keys", "fields"))
            and all(isinstance(v, str) for v in old + new)):
        added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
        parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed
                                                                    else [])
        return [Change(section, f"{path} {'; '.join(parts) or 'reordered'}")]
    if old is None or new is None:
        return [Change(section, f"{path} changed from {_show(old)} to {_show(new)} (None-ness)")]
    return [Change(section, f"{path} changed from {_show(old)} to {_show(new)}")]


def _diff_signature(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    for arg in old:
        if arg not in new:
            replacement = (compat.ARGUMENT_REPLACEMENTS.get(f"{name}.{arg}") or old[arg].get("alias_of")
                           or compat.ARGUMENT_REPLACEMENTS.get(f"{name.split('.')[0]}.{arg}"))
            hint = f" (use {replacement})" if replacement else ""
            changes.append(Change(name, f"removed argument {arg}{hint}"))
    for arg in new:
        if arg not in old:
            changes.append(Change(name, f"added argument {arg} (default {_show(new[arg]['default'])})"))
    for arg in old:
        if arg in new and old[arg] != new[arg]:
            for key in ("kind", "default", "alias_of"):
                if old[arg].get(key) != new[arg].get(key):
                    changes.append(Change(name, f"{key} of {arg} changed from {_show(old[arg].get(key))} to "
                                                f"{_show(new[arg].get(key))}"))
    return changes


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every change from snapshot `old` to `new`: situations (keys, dtypes, shapes, None-ness, padding, what
    compute_metrics saw) and signatures (removed, added, changed arguments). Library versions are not changes."""
    changes: list[Change] = []
    old_situations, new_situations = old["situations"], new["situations"]
    for name in old_situations:
        if name not in new_situations:
            changes.append(Change(name, "situation not observed in the newer snapshot"))
    for name in new_situations:
        if name not in old_situations:
            changes.append(Change(name, "situation not observed in the older snapshot"))
        else:
            changes += _diff_values(name, "", old_situations[name], new_situations[name])
    for name in sorted(set(old["signatures"]) | set(new["signatures"])):
        changes += _diff_signature(name, old["signatures"].get(name, {}), new["signatures"].get(name, {}))
    return changes


def render_diff(old: Mapping[str, Any], new: Mapping[str, Any], changes: Sequence[Change]) -> str:
    head = (f"transformers {old['libraries'].get('transformers')} -> {new['libraries'].get('transformers')}: "
            f"{len(changes)} change(s)")
    lines, section = [head], None
    for change in changes:
        if change.section != section:
            section = change.section
            lines.append(f"\n{section}")
        lines.append(f"  - {change.what}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line

DEFAULT_SNAPSHOT_DIR = Path("results") / "contracts"


def add_cli(subparsers: Any) -> None:
    """Register `harness contracts snapshot | diff` on the harness CLI's subparsers."""
    parser = subparsers.add_parser("contracts", help="Trainer output contracts: record a snapshot, diff two",
                                   description="Record what Trainer.predict()/evaluate() return under the installed "
                                               "libraries, or list what changed between two snapshots.")
    actions = parser.add_subparsers(dest="contracts_action", required=True, metavar="ACTION")
    snap = actions.add_parser("snapshot", help="observe the installed transformers and write its contract snapshot")
    snap.add_argument("--output", metavar="PATH", default=str(DEFAULT_SNAPSHOT_DIR),
                      help="a .json file, or a folder that gets transformers-<version>.json. "
                           f"Default: {DEFAULT_SNAPSHOT_DIR}")
    snap.set_defaults(handler=cmd_snapshot)
    compare = actions.add_parser("diff", help="list every change from snapshot A to snapshot B")
    compare.add_argument("a", metavar="A", help="older snapshot: a .json file or a transformers version")
    compare.add_argument("b", metavar="B", help="newer snapshot: a .json file or a transformers version")
    compare.add_argument("--dir", metavar="DIR", default=str(DEFAULT_SNAPSHOT_DIR),
                         help=f"where versions given as A/B are looked up. Default: {DEFAULT_SNAPSHOT_DIR}")
    compare.add_argument("--exit-code", action="store_true", help="exit with 1 when the snapshots differ")
    compare.set_defaults(handler=cmd_diff)


def cmd_snapshot(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix != ".json":
        output = snapshot_path(output, str(compat.TRANSFORMERS_VERSION))
    with session() as lab:
        payload = observe(lab)
    write_snapshot(payload, output)
    print(f"contract of transformers {compat.TRANSFORMERS_VERSION}: {len(payload['situations'])} situations, "
          f"{sum(len(v) for v in payload['signatures'].values())} arguments -> {output}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    old = load_snapshot(resolve_snapshot(args.a, Path(args.dir)))
    new = load_snapshot(resolve_snapshot(args.b, Path(args.dir)))
    changes = diff(old, new)
    print(render_diff(old, new, changes))
    return 1 if changes and args.exit_code else 0
