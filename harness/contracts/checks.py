"""Pure contract checks: each turns what the Trainer returned into "[id] message" violations; no Trainer is built.

Also the references they compare against (the per-example forward pass, the loss, the metrics recomputed
independently), `MetricsProbe`, the compute_metrics that records what it is given, and `violations`, which
judges one `Observation` from the driver. Per-version expectations come from harness.core.compat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.contracts.cases import LABEL_PADDING, Case, violation
from harness.core import compat
from harness.data import metrics
from harness.data.tasks import TaskSpec

from harness.contracts.observation import Evaluated, MetricsCall, Observation, Predicted

LOGITS_RTOL, LOGITS_ATOL = 1e-4, 1e-5  # batched and padded vs alone: float32 reassociation only

# ---------------------------------------------------------------------------------------------- compute_metrics probe


def _numpy(value: Any) -> Any:
    if value is None or isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch tensors (batch_eval_metrics passes them as they come)
        return value.detach().cpu().numpy()
    return value


@dataclass
class MetricsProbe:
    """compute_metrics for the suite: records each call, returns the task's metrics (harness.data.metrics.compute).

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
    """The task's metrics from scikit-learn / scipy, not harness.data.metrics; nan where a metric is undefined."""
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


def eval_batches(rows: int, batch_size: int) -> list[range]:
    """The index ranges of the evaluation batches, the last one partial when `batch_size` does not divide `rows`."""
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
    for batch in eval_batches(len(ids), batch_size):
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
    batches = eval_batches(n, case.eval_batch_size)
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



# ---------------------------------------------------------------------------------------------- one observation


def violations(seen: Observation) -> list[str]:
    """Every broken contract in one driven case: predict() on each dataset, then evaluate() on all of them."""
    if seen.train_error is not None:
        return [_raised("training before predict()", seen.train_error)]
    case = seen.case
    prefix = case.metric_key_prefix or "test"
    found: list[str] = []
    for index, run in enumerate(seen.predicted):
        where = f" ({run.name})" if len(seen.names) > 1 else ""
        if run.error is not None:
            found.append(_raised(f"predict(){where}", run.error))
            continue
        if not run.complete:
            found.append(violation("predict.type", f"predict(){where} returned {type(run.output).__name__}, "
                                                   "not PredictionOutput(predictions, label_ids, metrics)"))
            continue
        issues = _predict_violations(seen, run, prefix, first_call=index == 0 and case.training != "between")
        issues += check_determinism(run.output, run.again, prefix)
        issues += check_batch_invariance(run.output.predictions, run.other.predictions, case)
        found += [f"{issue}{where}" for issue in issues]
    if seen.evaluated is not None:
        found += _evaluate_violations(seen, seen.evaluated, prefix)
    return found


def _raised(step: str, error: BaseException) -> str:
    return violation("trainer.raised", f"{step} raised {type(error).__name__}: {error}")


def _predict_violations(seen: Observation, run: Predicted, prefix: str, *, first_call: bool) -> list[str]:
    """One predict() result against the per-example reference, the dataset labels and what compute_metrics saw."""
    case, task, data, reference = seen.case, seen.task, run.rows, run.reference
    found = check_prediction_output(run.output)
    predictions = getattr(run.output, "predictions", None)
    found_metrics = getattr(run.output, "metrics", None)
    if not isinstance(found_metrics, Mapping):
        return [*found, violation("metrics.keys", f"predict() metrics is {type(found_metrics).__name__}")]
    found += check_predictions(predictions, reference, case.num_labels)
    found += check_label_ids(getattr(run.output, "label_ids", None), data.labels, regression=task.is_regression)
    has_labels = data.labels is not None
    names = task.metrics if case.compute_metrics else ()
    expected = expected_metric_keys(prefix=prefix, has_labels=has_labels, metric_names=names,
                                    trained_before_first_eval=case.training == "before")
    found += check_metric_keys(found_metrics, expected, contract="metrics.keys",
                               situation=f"predict(labels={has_labels}, compute_metrics={case.compute_metrics}, "
                                         f"prefix={prefix!r}, training={case.training!r})")
    found += check_finite(found_metrics, prefix)
    found += check_speed(found_metrics, prefix, rows=len(data.ids), batch_size=case.eval_batch_size, wall=run.wall,
                         first_call=first_call)
    if has_labels:
        found += check_loss(found_metrics, prefix, reference_loss(reference, data.labels,
                                                                  regression=task.is_regression))
    if has_labels and case.compute_metrics and np.shape(predictions) == reference.shape:
        found += check_metric_values(found_metrics, prefix, independent_metrics(task, predictions, data.labels))
    if case.compute_metrics:
        found += check_metrics_calls(run.calls, case, ids=data.ids, labels=data.labels, predictions=predictions,
                                     loss=found_metrics.get(f"{prefix}_loss"), pad_id=seen.pad_id)
    return found


def _evaluate_violations(seen: Observation, evaluated: Evaluated, predict_prefix: str) -> list[str]:
    """evaluate()'s keys per dataset, its timings, and its agreement with predict() on the same data."""
    case = seen.case
    if evaluated.error is not None:
        return [_raised("evaluate()", evaluated.error)]
    found_metrics = evaluated.metrics
    if not isinstance(found_metrics, Mapping):
        return [violation("evaluate.keys", f"evaluate() returned {type(found_metrics).__name__}, not a dict")]
    prefix = case.metric_key_prefix or "eval"
    metric_names = seen.task.metrics if case.compute_metrics else ()
    runs = seen.predicted if case.eval_dict else seen.predicted[:1]
    expected: set[str] = set()
    found: list[str] = []
    for run in runs:
        scoped = f"{prefix}_{run.name}" if case.eval_dict else prefix
        expected |= expected_metric_keys(prefix=scoped, has_labels=run.rows.labels is not None,
                                         metric_names=metric_names,
                                         trained_before_first_eval=case.training == "before")
        found += check_finite(found_metrics, scoped)
        found += check_speed(found_metrics, scoped, rows=len(run.rows.ids), batch_size=case.eval_batch_size,
                             wall=evaluated.wall, first_call=False)
        predicted = run.output.metrics
        pairs = [(f"{scoped}_{m}", f"{predict_prefix}_{m}") for m in ("loss", *metric_names)]
        wrong = {ours: (found_metrics.get(ours), predicted.get(theirs)) for ours, theirs in pairs
                 if ours in found_metrics and theirs in predicted
                 and not _same_value(found_metrics[ours], predicted[theirs], rel=1e-6)}
        if wrong:
            found.append(violation("evaluate.matches_predict", f"evaluate() and predict() disagree on the same "
                                                               f"data: {wrong}"))
    if compat.evaluate_reports_epoch_key(trained=case.training != "none"):
        expected.add("epoch")
    situation = (f"evaluate({'dict of ' + str(len(runs)) if case.eval_dict else 'one dataset'}, "
                 f"compute_metrics={case.compute_metrics}, prefix={prefix!r}, training={case.training!r}) on "
                 f"transformers {compat.TRANSFORMERS_VERSION}")
    found += check_metric_keys(found_metrics, expected, contract="evaluate.keys", situation=situation)
    return found
