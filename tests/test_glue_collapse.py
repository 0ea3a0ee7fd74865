"""A glue model collapsed to its trivial answer is a quality regression on every task of the glue tier.

Judged on the committed baselines' stored predictions, no training: each seed's predictions are replaced by the
trivial answer (the majority class of the eval labels; for STS-B one constant score, their mean) and the collapsed
records are judged against the baselines with the quality judge, as a suite run would be.
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path

import numpy as np
import pytest

from harness.core.record import RunRecord
from harness.judging import registry, stats
from harness.core.evidence import Evidence
from harness.judging.verdict import REGRESSED
from harness.suite.matrix import TIERS
from harness.store import baselines

BASELINES = Path(__file__).resolve().parent.parent / "results" / "baselines"


def collapsed(record: RunRecord) -> RunRecord:
    """The record as if the model had answered every eval example with the trivial answer."""
    payload = copy.deepcopy(record.to_dict())
    for split in record.eval_splits:
        stored = payload["predictions"][split]
        labels = stored["labels"]
        trivial = (float(np.mean(labels)) if record.is_regression
                   else collections.Counter(labels).most_common(1)[0][0])
        stored["predictions"] = [trivial] * len(labels)
        payload["metrics"][split] = {record.primary_metric: stats.metric_value(record.primary_metric,
                                                                               stored["predictions"], labels)}
    return RunRecord.from_dict(payload)


@pytest.mark.parametrize("task", TIERS["glue"].tasks)
def test_a_collapse_to_the_trivial_answer_is_a_regression(task: str) -> None:
    committed = [r for r in baselines.load(BASELINES, "glue").records if r.task_name == task]
    assert committed, f"no committed glue baseline for {task}: regenerate them (README, glue tier)"
    verdicts = registry.judge(Evidence(records=[collapsed(r) for r in committed]), Evidence(records=committed),
                              kinds=["quality"])
    assert verdicts, f"{task}: nothing was judged"
    for verdict in verdicts:
        assert verdict.verdict == REGRESSED, (
            f"{task}: a model answering only the trivial answer is {verdict.verdict}, not regressed: "
            f"baseline {verdict.baseline:.4f}, collapsed {verdict.now:.4f} ({verdict.detail})")
