"""Trainer.predict()/evaluate() output contracts: what downstream code may rely on, checked and recorded.

- cases.py     contract ids and wording (`CONTRACTS`), `Case`/`DataSpec` and their seeded in-memory datasets
- checks.py    pure checks turning Trainer outputs into "[id] message" violations; references; `MetricsProbe`
- observation.py  what one drive produced (`Observation`, `Predicted`, `Evaluated`, `MetricsCall`)
- driver.py    `ContractSession.drive(case)`, the one driver of the real Trainer, returning an `Observation`;
               `check(case)` judges it, `session()` opens one
- snapshot.py  `observe()`: fixed situations and signatures as a versioned snapshot file under results/contracts/
- changes.py   `diff(a, b)`: every change between two snapshots, and `render_diff`
- strategies.py  hypothesis strategies drawing `Case`s (imports hypothesis; not re-exported here)

The command line is harness.commands.contracts; per-version expectations come from harness.core.compat.
"""

from __future__ import annotations

from harness.contracts.cases import (CONTRACTS, EVAL_SET_NAMES, LABEL_PADDING, TASK_FOR_NUM_LABELS, TRAIN_DATA,
                                     TRAINING, Case, DataSpec, Rows, broken, build_rows, contract_task,
                                     eval_set_names, format_failure, reproduce_snippet, to_dataset, violation)
from harness.contracts.changes import Change, diff, render_diff
from harness.contracts.checks import (MetricsProbe, expected_metric_keys, independent_metrics,
                                      reference_logits, reference_loss, violations)
from harness.contracts.driver import ContractSession, session
from harness.contracts.observation import Evaluated, MetricsCall, Observation, Predicted
from harness.contracts.snapshot import (SNAPSHOT, SNAPSHOT_SCHEMA_VERSION, library_versions, load_snapshot, observe,
                                        resolve_snapshot, signatures, snapshot_path, write_snapshot)

__all__ = [
    "CONTRACTS", "EVAL_SET_NAMES", "LABEL_PADDING", "TASK_FOR_NUM_LABELS", "TRAIN_DATA", "TRAINING", "Case",
    "DataSpec", "Rows", "broken", "build_rows", "contract_task", "eval_set_names", "format_failure",
    "reproduce_snippet", "to_dataset", "violation",
    "Change", "diff", "render_diff",
    "MetricsCall", "MetricsProbe", "expected_metric_keys", "independent_metrics", "reference_logits",
    "reference_loss", "violations",
    "ContractSession", "Evaluated", "Observation", "Predicted", "session",
    "SNAPSHOT", "SNAPSHOT_SCHEMA_VERSION", "library_versions", "load_snapshot", "observe", "resolve_snapshot",
    "signatures", "snapshot_path", "write_snapshot",
]
