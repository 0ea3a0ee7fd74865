"""Trainer.train() invariants: two runs of the real Trainer that must agree, checked over the tiny model families.

- cases.py       invariant ids and wording (`INVARIANTS`), the drawn `Case`, one fixed `WITNESSES` case per
                 invariant, a `Broken` invariant's report
- driver.py      `run(case)`, the one driver of train(), returning an `Observation`; `replay` recomputes its logged
                 losses outside the Trainer; `verify(invariant, case)` runs a case and its partner and checks them
- invariants.py  pure checks (two observations, or one and the documented formula) -> `Broken` items
- defects.py     known upstream defects per transformers version range, and how a suite test treats them
- strategies.py  hypothesis strategies drawing `Case`s (imports hypothesis; not re-exported here)

Per-version expectations come from harness.core.compat (its "training invariants" section).
"""

from __future__ import annotations

from harness.contracts.cases import DataSpec
from harness.training.cases import EVAL_DATA, INVARIANTS, WITNESSES, Broken, Case, format_failure
from harness.training.defects import DEFECTS, Defect, defects_for
from harness.training.driver import Logged, LossCall, Observation, replay, run, verify

__all__ = ["DataSpec", "EVAL_DATA", "INVARIANTS", "WITNESSES", "Broken", "Case", "format_failure", "DEFECTS", "Defect",
           "defects_for", "Logged", "LossCall", "Observation", "replay", "run", "verify"]
