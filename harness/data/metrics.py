"""Task metrics in plain numpy: GLUE's accuracy, F1, Matthews correlation, Pearson and Spearman.

Every metric takes keyword-only `predictions` (class ids or scores, never logits) and `references` and returns a
plain Python float. `compute` validates inputs against a `TaskSpec` and returns exactly `task.metrics`;
`trainer_metrics` adapts it to `transformers.Trainer(compute_metrics=...)`. scikit-learn and scipy are
deliberately not used here: the tests use them as an independent reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.errors import HarnessError, UnknownNameError
from harness.data.taskspec import TaskSpec

if TYPE_CHECKING:  # keep `import harness.data.metrics` free of transformers/evaluate
    import evaluate
    from transformers import EvalPrediction

COMBINED = "combined_score"
EVALUATE_MODULE_DIR = Path(__file__).resolve().parent / "evaluate_modules" / "harness_glue"
_TO_IDS_HINT = "convert logits first with harness.data.metrics.logits_to_predictions(task, logits)"


# ---------------------------------------------------------------- input checks


def _as_1d(name: str, values: npt.ArrayLike) -> np.ndarray:
    """`values` as a numeric 1-D array, or a HarnessError saying what to pass instead."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise HarnessError(f"{name} could not be read as an array ({exc}); pass a flat list or 1-D numpy "
                           "array with one value per example.") from None
    if array.ndim != 1:
        fix = f"{_TO_IDS_HINT}, or flatten it" if name == "predictions" else "flatten it, e.g. .reshape(-1)"
        raise HarnessError(f"{name} must be 1-D with one value per example, but has shape {array.shape}; {fix}.")
    if array.dtype.kind not in "iuf":
        raise HarnessError(f"{name} must hold numbers (integers or floats), but has dtype {array.dtype}; "
                           "pass class ids for classification or float scores for regression.")
    return array


def _as_pair(predictions: npt.ArrayLike, references: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as numeric 1-D arrays of the same, non-zero length."""
    preds, refs = _as_1d("predictions", predictions), _as_1d("references", references)
    if len(preds) != len(refs):
        raise HarnessError(f"predictions has {len(preds)} rows but references has {len(refs)}; "
                           "pass one prediction per example.")
    if len(preds) == 0:
        raise HarnessError("predictions and references are empty; pass at least one example "
                           "(check that the evaluation split is not empty).")
    return preds, refs


def _as_class_ids(name: str, values: np.ndarray, task: TaskSpec) -> np.ndarray:
    """`values` as int64 class ids in range(task.num_labels)."""
    if values.dtype.kind == "f":
        fractional = values[~np.isfinite(values) | (values != np.round(values))]
        if fractional.size:
            raise HarnessError(f"{name} must be integer class ids for task {task.name!r}, but contains "
                               f"{float(fractional[0])}; pass class ids, not scores or probabilities "
                               f"({_TO_IDS_HINT}).")
    outside = values[(values < 0) | (values >= task.num_labels)]  # before casting: 1e30 must not wrap
    if outside.size:
        allowed = ", ".join(f"{i}={label}" for i, label in enumerate(task.label_names))
        raise HarnessError(f"{name} contains label {int(outside[0])}, outside range(0, {task.num_labels}) for "
                           f"task {task.name!r} ({allowed}); map labels with task.label2id and give the model "
                           f"num_labels={task.num_labels}.")
    return values.astype(np.int64)


# ---------------------------------------------------------------- metrics


def accuracy(*, predictions: npt.ArrayLike, references: npt.ArrayLike) -> float:
    """Fraction of predictions equal to their reference."""
    preds, refs = _as_pair(predictions, references)
    return float(np.mean(preds == refs))


def f1(*, predictions: npt.ArrayLike, references: npt.ArrayLike, positive_label: int = 1) -> float:
    """Binary F1 of `positive_label`; 0.0 when it is undefined (no true and no predicted positives)."""
    preds, refs = _as_pair(predictions, references)
    pred_pos, ref_pos = preds == positive_label, refs == positive_label
    true_pos = int(np.sum(pred_pos & ref_pos))
    denominator = int(np.sum(pred_pos)) + int(np.sum(ref_pos))  # = 2tp + fp + fn
    return 2.0 * true_pos / denominator if denominator else 0.0


def matthews_correlation(*, predictions: npt.ArrayLike, references: npt.ArrayLike) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K); 0.0 when either side has a single class."""
    preds, refs = _as_pair(predictions, references)
    classes, codes = np.unique(np.concatenate([refs, preds]), return_inverse=True)
    ref_codes, pred_codes = codes[: len(refs)], codes[len(refs):]
    ref_counts = np.bincount(ref_codes, minlength=len(classes)).astype(np.float64)
    pred_counts = np.bincount(pred_codes, minlength=len(classes)).astype(np.float64)
    n, correct = float(len(refs)), float(np.sum(ref_codes == pred_codes))
    cov_ref_pred = correct * n - float(ref_counts @ pred_counts)
    cov_pred_pred = n * n - float(pred_counts @ pred_counts)
    cov_ref_ref = n * n - float(ref_counts @ ref_counts)
    denominator = cov_pred_pred * cov_ref_ref
    return cov_ref_pred / math.sqrt(denominator) if denominator else 0.0


def _pearson_of(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two float arrays; nan when either is constant or not finite."""
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    x_dev, y_dev = x - x.mean(), y - y.mean()
    scale = float(np.linalg.norm(x_dev)) * float(np.linalg.norm(y_dev))
    if scale == 0.0:  # deviations underflowed
        return math.nan
    return min(1.0, max(-1.0, float(x_dev @ y_dev) / scale))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    run_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_ends = np.r_[run_starts[1:], len(values)]  # exclusive
    run_of_position = np.repeat(np.arange(len(run_starts)), run_ends - run_starts)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((run_starts + run_ends + 1) / 2.0)[run_of_position]
    return ranks


def pearson(*, predictions: npt.ArrayLike, references: npt.ArrayLike) -> float:
    """Pearson correlation; nan for constant (including length-1) or non-finite input, as scipy."""
    preds, refs = _as_pair(predictions, references)
    return _pearson_of(preds.astype(np.float64), refs.astype(np.float64))


def spearmanr(*, predictions: npt.ArrayLike, references: npt.ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); nan when pearson would be."""
    preds, refs = _as_pair(predictions, references)
    x, y = preds.astype(np.float64), refs.astype(np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    return _pearson_of(_average_ranks(x), _average_ranks(y))


# ---------------------------------------------------------------- vectorised forms (rows = bootstrap resamples)


def _accuracy_rows(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (pred == ref).mean(axis=-1)


def _f1_rows(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    tp = ((pred == 1) & (ref == 1)).sum(axis=-1)
    wrong = (pred != ref).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(2 * tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0)


def _matthews_rows(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    classes = np.union1d(np.unique(pred), np.unique(ref))
    n = pred.shape[-1]
    correct = (pred == ref).sum(axis=-1).astype(float)
    p_k = np.stack([(pred == k).sum(axis=-1) for k in classes], axis=-1).astype(float)
    t_k = np.stack([(ref == k).sum(axis=-1) for k in classes], axis=-1).astype(float)
    num = correct * n - (p_k * t_k).sum(axis=-1)
    den = np.sqrt((n * n - (p_k ** 2).sum(axis=-1)) * (n * n - (t_k ** 2).sum(axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _pearson_rows(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r for judging: a constant (or non-finite) row carries no association and counts as 0, as
    Matthews does for a single class, where `pearson` says nan like scipy; a model collapsed to one output is then
    a drop to 0, which the quality judge can flag, not a missing value."""
    x = pred - pred.mean(axis=-1, keepdims=True)
    y = ref - ref.mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(axis=-1) / den, 0.0)


def _spearman_rows(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    ranks = lambda a: np.apply_along_axis(_average_ranks, -1, np.atleast_2d(a)).reshape(a.shape)  # noqa: E731
    return _pearson_rows(ranks(pred), ranks(ref))


@dataclass(frozen=True)
class Metric:
    """A task metric, registered once: its plain function, its vectorised form and how it behaves."""

    name: str
    function: Callable[..., float]  # keyword-only predictions / references -> float
    rows: Callable[[np.ndarray, np.ndarray], np.ndarray]  # the same metric over each row of 2-D arrays
    correlation: bool = False  # in [-1, 1]; its sampling error is never below (1 - r^2) / sqrt(n - 1)
    higher_is_better: bool = True


METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in (
    Metric("accuracy", accuracy, _accuracy_rows),
    Metric("f1", f1, _f1_rows),
    Metric("matthews_correlation", matthews_correlation, _matthews_rows, correlation=True),
    Metric("pearson", pearson, _pearson_rows, correlation=True),
    Metric("spearmanr", spearmanr, _spearman_rows, correlation=True),
)})
METRIC_FUNCTIONS: Mapping[str, Callable[..., float]] = MappingProxyType({n: m.function for n, m in METRICS.items()})
METRIC_NAMES: tuple[str, ...] = (*METRICS, COMBINED)  # every name a task may list


# ---------------------------------------------------------------- task level


def compute(task: TaskSpec, *, predictions: npt.ArrayLike, references: npt.ArrayLike) -> dict[str, float]:
    """Exactly `task.metrics`, from class ids (classification) or scores (regression)."""
    preds, refs = _as_pair(predictions, references)
    if not task.is_regression:
        preds, refs = _as_class_ids("predictions", preds, task), _as_class_ids("references", refs, task)
    results: dict[str, float] = {}
    for name in task.metrics:
        if name == COMBINED:
            continue
        if name not in METRIC_FUNCTIONS:
            raise UnknownNameError("metric", name, (*METRIC_FUNCTIONS, COMBINED))
        results[name] = METRIC_FUNCTIONS[name](predictions=preds, references=refs)
    if COMBINED in task.metrics:
        parts = list(results.values())
        results[COMBINED] = sum(parts) / len(parts) if parts else math.nan
    return {name: results[name] for name in task.metrics}


def logits_to_predictions(task: TaskSpec, logits: npt.ArrayLike) -> np.ndarray:
    """Class ids (argmax over the last axis) for classification; a 1-D score array for regression."""
    array = np.asarray(logits)
    if task.is_regression:
        if array.ndim == 2 and array.shape[1] == 1:
            return array[:, 0]
        if array.ndim == 1:
            return array
        raise HarnessError(f"regression task {task.name!r} needs logits of shape (n, 1) or (n,), got "
                           f"{array.shape}; load the model with num_labels=1 (problem_type='regression').")
    if array.ndim != 2 or array.shape[1] != task.num_labels:
        raise HarnessError(f"task {task.name!r} needs logits of shape (n, {task.num_labels}) "
                           f"({', '.join(task.label_names)}), got {array.shape}; load the model with "
                           f"num_labels={task.num_labels}.")
    return np.argmax(array, axis=-1)


def trainer_metrics(task: TaskSpec) -> Callable[[EvalPrediction], dict[str, float]]:
    """A `compute_metrics` callable for transformers.Trainer that returns `compute(task, ...)`."""

    def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
        logits, labels = eval_pred
        if isinstance(logits, tuple):  # some models also return hidden states / attentions
            logits = logits[0]
        if labels is None:
            raise HarnessError(f"the evaluation set for task {task.name!r} has no labels; keep its label "
                               "column (named 'labels' or 'label') so Trainer can pass label_ids.")
        return compute(task, predictions=logits_to_predictions(task, logits), references=labels)

    return compute_metrics


def load_evaluate_metric(task: TaskSpec, **load_kwargs: Any) -> evaluate.EvaluationModule:
    """The harness_glue `evaluate` module for `task`, loaded offline from its file path.

    `load_kwargs` go to `evaluate.load` (e.g. `cache_dir`); predictions are kept in memory unless told otherwise.
    """
    import evaluate  # lazy: heavy, and only needed here

    load_kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(EVALUATE_MODULE_DIR), config_name=task.name, **load_kwargs)
