"""Contract snapshots: what the installed transformers does in fixed situations, as a versioned JSON file.

`observe(lab)` drives each situation once (harness.contracts.driver) and keeps what downstream code may rely on:
metric keys, dtypes, shapes, None-ness, padding values, what compute_metrics saw, and argument signatures.
Files live under results/contracts/ as transformers-<version>.json; harness.base.jsonfile reads and writes them.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__ as HARNESS_VERSION
from harness.contracts.cases import Case, DataSpec
from harness.contracts.checks import eval_batches
from harness.contracts.observation import MetricsCall, Observation
from harness.contracts.driver import ContractSession
from harness.machine.env import package_versions
from harness.base import jsonfile
from harness.base.jsonfile import JsonKind, SchemaError

SNAPSHOT_SCHEMA_VERSION = 1
SNAPSHOT = JsonKind("contract snapshot", SNAPSHOT_SCHEMA_VERSION, "re-record it with `harness contracts snapshot`",
                    required=("libraries", "situations", "signatures"))
SNAPSHOT_LIBRARIES = ("transformers", "torch", "accelerate", "datasets", "tokenizers", "numpy")
_SNAPSHOT_DATA = DataSpec(rows=5, seed=1, min_length=2, max_length=12)  # batches of 2: widths differ, last is partial
_SNAPSHOT_UNLABELED = dataclasses.replace(_SNAPSHOT_DATA, label_column=None)

# ---------------------------------------------------------------------------------------------- situations


def predict_situations() -> dict[str, Case]:
    base = Case(model="tiny-bert", data=(_SNAPSHOT_DATA,), eval_batch_size=2)
    regression = dataclasses.replace(base, num_labels=1)
    with_labels_column = (dataclasses.replace(_SNAPSHOT_DATA, label_column="labels"),)
    return {
        "predict 2 labels": base,
        "predict 2 labels, column 'labels', no compute_metrics": dataclasses.replace(
            base, data=with_labels_column, compute_metrics=False),
        "predict 2 labels, no label column": dataclasses.replace(base, data=(_SNAPSHOT_UNLABELED,)),
        "predict 3 labels": dataclasses.replace(base, num_labels=3),
        "predict regression": regression,
        "predict regression, no label column": dataclasses.replace(regression, data=(_SNAPSHOT_UNLABELED,)),
        "predict metric_key_prefix 'val'": dataclasses.replace(base, metric_key_prefix="val"),
        "predict include_for_metrics inputs+loss": dataclasses.replace(base, include_for_metrics=("inputs", "loss")),
        "predict batch_eval_metrics": dataclasses.replace(base, batch_eval_metrics=True),
        "predict batch_eval_metrics, include_for_metrics inputs+loss": dataclasses.replace(
            base, batch_eval_metrics=True, include_for_metrics=("inputs", "loss")),
        "predict after train()": dataclasses.replace(base, training="before"),
    }


def evaluate_situations() -> dict[str, Case]:
    base = Case(model="tiny-bert", data=(_SNAPSHOT_DATA,), eval_batch_size=2)
    two = (_SNAPSHOT_DATA, dataclasses.replace(_SNAPSHOT_DATA, rows=3, seed=2))
    return {
        "evaluate 2 labels": base,
        "evaluate no compute_metrics": dataclasses.replace(base, compute_metrics=False),
        "evaluate no label column": dataclasses.replace(base, data=(_SNAPSHOT_UNLABELED,)),
        "evaluate metric_key_prefix 'val'": dataclasses.replace(base, metric_key_prefix="val"),
        "evaluate dict of two datasets": dataclasses.replace(base, data=two, eval_dict=True),
        "evaluate batch_eval_metrics, dict of two datasets": dataclasses.replace(
            base, data=two, eval_dict=True, batch_eval_metrics=True),
        "evaluate after train()": dataclasses.replace(base, training="before"),
        "evaluate before and after train()": dataclasses.replace(base, training="between"),
    }


# ---------------------------------------------------------------------------------------------- summaries

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
    for batch in eval_batches(len(ids), batch_size):
        batch_width = max(len(ids[i]) for i in batch)
        for i in batch:
            within |= set(inputs[i, len(ids[i]):batch_width].tolist())
            beyond |= set(inputs[i, batch_width:].tolist())
    return {"within_batch": sorted(within), "beyond_batch": sorted(beyond)}


def _succeeded(seen: Observation) -> Observation:
    """`seen`, or the first exception the Trainer raised in it: a snapshot records only situations that ran."""
    if seen.errors:
        raise seen.errors[0]
    return seen


def summarise_predict(seen: Observation) -> dict[str, Any]:
    """The first dataset's first predict(): output type and fields, arrays, metric keys, compute_metrics calls."""
    run = _succeeded(seen).predicted[0]
    output = run.output
    observed = {"type": type(output).__name__, "fields": list(getattr(output, "_fields", ())),
                "predictions": _describe_array(output.predictions), "label_ids": _describe_array(output.label_ids),
                "metric_keys": sorted(output.metrics)}
    if seen.case.compute_metrics:
        observed["compute_metrics"] = _describe_calls(run.calls)
        if run.calls and isinstance(run.calls[0].inputs, np.ndarray):
            observed["inputs_padding"] = _padding_values(run.calls[0].inputs, run.rows.ids, seen.case.eval_batch_size)
    return observed


def summarise_evaluate(seen: Observation) -> dict[str, Any]:
    """evaluate()'s metric keys and its compute_metrics calls."""
    evaluated = _succeeded(seen).evaluated
    assert evaluated is not None  # drive() evaluates unless training raised
    observed: dict[str, Any] = {"metric_keys": sorted(evaluated.metrics)}
    if seen.case.compute_metrics:
        observed["compute_metrics"] = _describe_calls(evaluated.calls)
    return observed


# ---------------------------------------------------------------------------------------------- signatures

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
    for name, case in predict_situations().items():
        situations[name] = summarise_predict(lab.drive(case, evaluate=False))
    for name, case in evaluate_situations().items():
        situations[name] = summarise_evaluate(lab.drive(case, predict=False))
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


# ---------------------------------------------------------------------------------------------- files


def snapshot_path(root: Path, transformers_version: str) -> Path:
    return Path(root) / f"transformers-{transformers_version}.json"


def write_snapshot(payload: Mapping[str, Any], path: Path) -> Path:
    return jsonfile.write(Path(path), payload)


def load_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot file, or SchemaError saying what to do."""
    payload = jsonfile.read(Path(path), SNAPSHOT)
    not_objects = [key for key in SNAPSHOT.required if not isinstance(payload[key], dict)]
    if not_objects:
        raise SchemaError(f"{path}: expected a JSON object for {', '.join(repr(k) for k in not_objects)} in a "
                          f"version {SNAPSHOT_SCHEMA_VERSION} {SNAPSHOT.name}; {SNAPSHOT.remedy}.")
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

