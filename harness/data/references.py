"""Published results to show beside measured ones: an external reference column in reports, never a baseline.

Values are kept as published (percent) and returned on the harness's 0-1 scale. A reference was obtained with other
library versions and hardware, so it says whether a run is in the right region, not whether it regressed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

RUN_GLUE_SOURCE = ("transformers examples/pytorch/text-classification/README.md: run_glue.py, dev sets, batch 32, "
                   "lr 2e-5, max length 128, 3 epochs (5 for MRPC and WNLI), seeded, one Titan RTX, PyTorch 1.6")


@dataclass(frozen=True)
class Reference:
    model: str
    task: str
    split: str
    metric: str
    value: float  # 0-1, as the harness's metrics
    precision: str  # what the published run trained in: "fp32" or "fp16"
    source: str


# task -> (eval split, metric) -> (fp32 %, fp16 %), bert-base-cased as published in RUN_GLUE_SOURCE
_RUN_GLUE_BERT_BASE_CASED: Mapping[str, Mapping[tuple[str, str], tuple[float, float]]] = MappingProxyType({
    "cola": {("validation", "matthews_correlation"): (56.53, 56.78)},
    "sst2": {("validation", "accuracy"): (92.32, 91.74)},
    "mrpc": {("validation", "f1"): (88.85, 88.12), ("validation", "accuracy"): (84.07, 83.58)},
    "stsb": {("validation", "pearson"): (88.64, 88.71), ("validation", "spearmanr"): (88.48, 88.55)},
    "qqp": {("validation", "accuracy"): (90.71, 90.67), ("validation", "f1"): (87.49, 87.43)},
    "mnli": {("validation_matched", "accuracy"): (83.91, 84.04),
             ("validation_mismatched", "accuracy"): (84.10, 84.06)},
    "qnli": {("validation", "accuracy"): (90.66, 90.96)},
    "rte": {("validation", "accuracy"): (65.70, 65.34)},
    "wnli": {("validation", "accuracy"): (56.34, 56.34)},
})
_PUBLISHED = MappingProxyType({"bert-base-cased": (_RUN_GLUE_BERT_BASE_CASED, RUN_GLUE_SOURCE)})
_MODEL_ALIASES = MappingProxyType({"google-bert/bert-base-cased": "bert-base-cased"})  # registry name <- hub id
_TASK_ALIASES = MappingProxyType({"mnli_matched": "mnli", "mnli_mismatched": "mnli"})


def reference(model: str, task: str, metric: str, split: str = "validation",
              precision: str = "fp32") -> Reference | None:
    """The published value for a model (registry name or hub id), task, eval split and metric, or None.

    fp16 runs get the published fp16 figure; every other precision the fp32 one (nothing is published for bf16).
    """
    name = _MODEL_ALIASES.get(model, model)
    published = _PUBLISHED.get(name)
    if published is None:
        return None
    table, source = published
    base = _TASK_ALIASES.get(task, task)
    values = table.get(base, {}).get((split, metric))
    if values is None:
        return None
    used = "fp16" if precision == "fp16" else "fp32"
    percent = values[1] if used == "fp16" else values[0]
    return Reference(model=name, task=base, split=split, metric=metric, value=round(percent / 100, 6),
                     precision=used, source=source)


def references_for(model: str, task: str, precision: str = "fp32") -> dict[tuple[str, str], Reference]:
    """Every published value of a model on a task, keyed by (eval split, metric)."""
    published = _PUBLISHED.get(_MODEL_ALIASES.get(model, model))
    keys = published[0].get(_TASK_ALIASES.get(task, task), {}) if published else {}
    found = {key: reference(model, task, key[1], key[0], precision) for key in keys}
    return {key: ref for key, ref in found.items() if ref is not None}
