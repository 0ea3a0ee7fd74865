"""`evaluate` metric module for every harness task; the numbers come from harness.data.metrics.compute.

Load it offline by path, with the task name as config:
    evaluate.load("/abs/path/to/harness/evaluate_modules/harness_glue", config_name="mrpc")
or simply harness.data.metrics.load_evaluate_metric(task). evaluate copies this file into its module cache and
scans its imports: keep them absolute (relative ones are treated as files to copy) and one per line.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from harness.errors import HarnessError
from harness.errors import UnknownNameError
from harness.data.metrics import compute
from harness.data.tasks import TaskSpec
from harness.data.tasks import get_task

_DESCRIPTION = "GLUE-style metrics (accuracy, F1, Matthews, Pearson, Spearman, combined_score) per harness task."
_CITATION = ""
_INPUTS = """
Args:
    predictions: class ids (int) for classification tasks, scores (float) for regression tasks.
    references: gold labels, same type and length as predictions.
Returns:
    dict with exactly the task's metrics, e.g. {"accuracy": ..., "f1": ..., "combined_score": ...} for mrpc.
"""


def _task_for(config_name: str) -> TaskSpec:
    try:
        return get_task(config_name)
    except UnknownNameError as exc:
        raise HarnessError(f"{exc} Pass the task name as config_name, "
                           "e.g. evaluate.load(<path to harness_glue>, config_name='mrpc').") from None


class HarnessGlue(evaluate.Metric):
    """One config per task in harness.data.tasks.TASKS."""

    def _info(self) -> evaluate.MetricInfo:
        dtype = "float32" if _task_for(self.config_name).is_regression else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
            format="numpy",
        )

    def _compute(self, predictions: Any, references: Any) -> dict[str, float]:
        return compute(_task_for(self.config_name), predictions=predictions, references=references)
