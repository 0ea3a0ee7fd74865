"""Every contract in harness.contracts.CONTRACTS turns red on a matching Trainer fault, naming itself.

Each fault monkeypatches transformers.Trainer (or the EvalPrediction it builds) the way a library regression
would, runs the same check the contract suite runs on one fixed case, and asserts the named contract is reported.
The unpatched case must pass first, so a fault test cannot pass on a check that always fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import transformers
import transformers.trainer

from harness import contracts
from harness.contracts import Case, DataSpec

PLAIN = Case(model="tiny-bert", num_labels=2, data=(DataSpec(rows=13, seed=5),), eval_batch_size=4, alt_batch_size=1)
UNLABELED = dataclasses.replace(PLAIN, data=(DataSpec(rows=13, seed=5, label_column=None),))
REGRESSION = dataclasses.replace(PLAIN, num_labels=1)
WITH_INPUTS = dataclasses.replace(PLAIN, include_for_metrics=("inputs", "loss"))
TRAINED = dataclasses.replace(PLAIN, training="before")
Patch = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Fault:
    name: str
    contract: str  # the id the check must report
    case: Case
    inject: Patch


# ------------------------------------------------------------------ patch builders


def wrap(name: str, after: Callable[..., Any] | None = None,
         before: Callable[..., None] | None = None) -> Patch:
    """Patch Trainer.<name>: `before(self, *args)` runs first; `after(self, result)` may replace the result."""
    def inject(monkeypatch: pytest.MonkeyPatch) -> None:
        original = getattr(transformers.Trainer, name)

        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(self, *args)
            result = original(self, *args, **kwargs)
            return after(self, result) if after is not None else result

        monkeypatch.setattr(transformers.Trainer, name, patched)
    return inject


def on_prediction(change: Callable[[Any], Any]) -> Patch:
    """Patch predict() to return PredictionOutput(**change(fields)) instead."""
    def after(self: Any, output: Any) -> Any:
        return transformers.trainer_utils.PredictionOutput(**change(output._asdict()))
    return wrap("predict", after)


def replacing(**changes: Callable[[Any], Any]) -> Patch:
    """predict() output with some fields passed through functions."""
    return on_prediction(lambda fields: {k: changes[k](v) if k in changes else v for k, v in fields.items()})


def edit_metrics(method: str, edit: Callable[[dict[str, Any]], None]) -> Patch:
    """Patch predict()/evaluate() so `edit` mutates the metrics dict before the caller sees it."""
    def after(self: Any, result: Any) -> Any:
        edit(result.metrics if method == "predict" else result)
        return result
    return wrap(method, after)


def eval_prediction(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Patch:
    """Replace the EvalPrediction the Trainer hands to compute_metrics by one built from changed fields."""
    def inject(monkeypatch: pytest.MonkeyPatch) -> None:
        original = transformers.trainer.EvalPrediction

        def build(**fields: Any) -> Any:
            return original(**change(fields))

        monkeypatch.setattr(transformers.trainer, "EvalPrediction", build)
    return inject


class ThreeElements(transformers.trainer_utils.EvalPrediction):
    """An EvalPrediction that always unpacks into three elements, as if `inputs` were always included."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.elements = (self.predictions, self.label_ids, self.inputs)


def always_three_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformers.trainer, "EvalPrediction", ThreeElements)


def drop_last_partial_batch(self: Any, *args: Any) -> None:
    self.args.dataloader_drop_last = True


def dropout_on(self: Any, model: Any, *args: Any) -> None:
    model.train()


def batch_dependent_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    original = transformers.Trainer.prediction_step

    def patched(self: Any, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        loss, logits, labels = original(self, model, inputs, *args, **kwargs)
        return loss, logits + 1e-3 * logits.shape[0], labels

    monkeypatch.setattr(transformers.Trainer, "prediction_step", patched)


def metrics_without_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    original = transformers.Trainer.evaluation_loop

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        output = original(self, *args, **kwargs)
        if output.label_ids is None and self.compute_metrics is not None:
            self.compute_metrics(transformers.trainer_utils.EvalPrediction(predictions=output.predictions,
                                                                           label_ids=None))
        return output

    monkeypatch.setattr(transformers.Trainer, "evaluation_loop", patched)


def raise_error(self: Any, *args: Any) -> None:
    raise RuntimeError("injected failure")


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    return _where(old, lambda m: m.__setitem__(new, m.pop(old)))


def _where(key: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """`edit` only metrics that have `key` (the comparison Trainer has no compute_metrics)."""
    return lambda m: edit(m) if key in m else None


def _toggle_epoch(m: dict[str, Any]) -> None:
    if "epoch" in m:
        del m["epoch"]
    else:
        m["epoch"] = 0.0


def _pad_with_zero(fields: dict[str, Any]) -> dict[str, Any]:
    inputs = fields.get("inputs")
    if isinstance(inputs, np.ndarray):
        fields["inputs"] = np.where(inputs == contracts.LABEL_PADDING, 0, inputs)
    return fields


def _reverse_labels(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "label_ids": fields["label_ids"][::-1]}


def _truncate_losses(fields: dict[str, Any]) -> dict[str, Any]:
    losses = fields.get("losses")
    return {**fields, "losses": losses[:-1]} if losses is not None else fields


def _first_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0, 0] = np.nan
    return a


# ------------------------------------------------------------------ the faults

FAULTS: tuple[Fault, ...] = (
    Fault("predict raises", "trainer.raised", PLAIN, wrap("predict", before=raise_error)),
    Fault("predict returns a plain tuple", "predict.type", PLAIN,
          wrap("predict", lambda self, out: tuple(out))),
    Fault("last partial batch dropped", "predictions.shape", PLAIN,
          wrap("get_test_dataloader", before=drop_last_partial_batch)),
    Fault("regression predictions squeezed to (n,)", "predictions.shape", REGRESSION,
          replacing(predictions=lambda p: p[:, 0])),
    Fault("predictions float64", "predictions.dtype", PLAIN, replacing(predictions=lambda p: p.astype(np.float64))),
    Fault("a prediction is nan", "predictions.finite", PLAIN, replacing(predictions=_first_nan)),
    Fault("predictions reordered", "predictions.order", PLAIN, replacing(predictions=lambda p: p[::-1].copy())),
    Fault("logits depend on the batch size", "predictions.batch_invariant", PLAIN, batch_dependent_logits),
    Fault("dropout left on in predict", "predict.deterministic", PLAIN,
          wrap("prediction_step", before=dropout_on)),
    Fault("dropout left on in predict (order)", "predictions.order", PLAIN,
          wrap("prediction_step", before=dropout_on)),
    Fault("dropout left on in predict after train()", "predict.deterministic", TRAINED,
          wrap("prediction_step", before=dropout_on)),
    Fault("label_ids None despite labels", "label_ids.values", PLAIN, replacing(label_ids=lambda y: None)),
    Fault("label_ids reordered", "label_ids.values", PLAIN, replacing(label_ids=lambda y: y[::-1].copy())),
    Fault("label_ids int32", "label_ids.dtype", PLAIN, replacing(label_ids=lambda y: y.astype(np.int32))),
    Fault("regression label_ids float64", "label_ids.dtype", REGRESSION,
          replacing(label_ids=lambda y: y.astype(np.float64))),
    Fault("label_ids zeros without labels", "label_ids.none", UNLABELED,
          replacing(label_ids=lambda y: np.zeros(13, dtype=np.int64))),
    Fault("metric key renamed", "metrics.keys", PLAIN, edit_metrics("predict", _rename("test_loss", "test_eval_loss"))),
    Fault("compute_metrics key renamed", "metrics.keys", PLAIN,
          edit_metrics("predict", _rename("test_accuracy", "test_acc"))),
    Fault("loss reported without labels", "metrics.keys", UNLABELED,
          edit_metrics("predict", _where("test_runtime", lambda m: m.__setitem__("test_loss", 0.5)))),
    Fault("runtime is nan", "metrics.finite", PLAIN,
          edit_metrics("predict", lambda m: m.__setitem__("test_runtime", math.nan))),
    Fault("samples_per_second doubled", "metrics.speed", PLAIN,
          edit_metrics("predict", lambda m: m.__setitem__("test_samples_per_second", 2 * m["test_samples_per_second"]))),
    Fault("loss off by 10%", "metrics.loss", PLAIN,
          edit_metrics("predict", lambda m: m.__setitem__("test_loss", 1.1 * m["test_loss"]))),
    Fault("metric value off", "metrics.values", PLAIN,
          edit_metrics("predict", _where("test_accuracy",
                                         lambda m: m.__setitem__("test_accuracy", m["test_accuracy"] + 0.25)))),
    Fault("compute_metrics called without labels", "compute_metrics.calls", UNLABELED, metrics_without_labels),
    Fault("compute_metrics sees labels reordered", "compute_metrics.calls", PLAIN, eval_prediction(_reverse_labels)),
    Fault("EvalPrediction unpacks into three", "eval_prediction.unpack", PLAIN, always_three_elements),
    Fault("inputs padded with 0 across batches", "eval_prediction.inputs", WITH_INPUTS,
          eval_prediction(_pad_with_zero)),
    Fault("a loss missing from losses", "eval_prediction.losses", WITH_INPUTS, eval_prediction(_truncate_losses)),
    Fault("epoch key toggled in evaluate", "evaluate.keys", PLAIN, edit_metrics("evaluate", _toggle_epoch)),
    Fault("epoch key toggled in evaluate after train()", "evaluate.keys", TRAINED,
          edit_metrics("evaluate", _toggle_epoch)),
    Fault("model_preparation_time reported after train()", "metrics.keys", TRAINED,
          edit_metrics("predict", _where("test_runtime",
                                         lambda m: m.__setitem__("test_model_preparation_time", 0.0)))),
    Fault("evaluate loss differs from predict", "evaluate.matches_predict", PLAIN,
          edit_metrics("evaluate", lambda m: m.__setitem__("eval_loss", m["eval_loss"] + 0.01))),
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[contracts.ContractSession]:
    with contracts.session(tmp_path_factory.mktemp("contracts")) as session:
        yield session


CLEAN = {"plain": PLAIN, "unlabeled": UNLABELED, "regression": REGRESSION, "with-inputs": WITH_INPUTS,
         "trained": TRAINED}


@pytest.mark.parametrize("case", CLEAN.values(), ids=CLEAN.keys())
def test_fault_cases_pass_unpatched(lab: contracts.ContractSession, case: Case) -> None:
    violations = lab.check(case)
    assert not violations, contracts.format_failure(case, violations)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_breaks_its_contract(lab: contracts.ContractSession, monkeypatch: pytest.MonkeyPatch,
                                   fault: Fault) -> None:
    fault.inject(monkeypatch)
    violations = lab.check(fault.case)
    assert fault.contract in contracts.broken(violations), (
        f"fault {fault.name!r} should break [{fault.contract}]; the check reported: {violations}")
    named = [v for v in violations if v.startswith(f"[{fault.contract}]")]
    assert all(len(v) > len(fault.contract) + 10 for v in named), "a violation must say what broke"


def test_every_contract_has_a_fault() -> None:
    assert {f.case for f in FAULTS} <= set(CLEAN.values()), "every fault case must also be checked clean"
    covered = {f.contract for f in FAULTS}
    assert covered == set(contracts.CONTRACTS), f"contracts without a fault test: {set(contracts.CONTRACTS) - covered}"
