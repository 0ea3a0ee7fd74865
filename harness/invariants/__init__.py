"""Trainer.train() invariants: two runs of the real Trainer that must agree, checked over the tiny model families.

- registry.py    every invariant as one `Invariant` object in `INVARIANTS` (wording, witness case, check, the run
                 it compares with, strategy, share, CUDA precisions)
- cases.py       the drawn `TrainCase` and a `Broken` invariant's report
- observation.py what one train() did (`TrainRun`), as the driver records it and the checks read it
- driver.py      `run(case)`, the one driver of train(), returning an `TrainRun`; `replay` recomputes its logged
                 losses outside the Trainer; `verify(invariant, case)` runs a case and its partner and checks them
- invariants.py  pure checks (two observations, or one and the documented formula) -> `Broken` items
- defects.py     known upstream defects per transformers version range, and how a suite test treats them
- strategies.py  hypothesis strategies drawing `TrainCase`s (imports hypothesis; not re-exported here)

Per-version expectations come from harness.core.compat (its "training invariants" section).
"""

from __future__ import annotations

from harness.contracts.cases import DataSpec
from harness.invariants.cases import EVAL_DATA, Broken, TrainCase
from harness.invariants.defects import DEFECTS, Defect, defects_for
from harness.invariants.driver import replay, run, verify
from harness.invariants.observation import Logged, LossCall, TrainRun
from harness.invariants.registry import INVARIANTS, Invariant, format_failure

__all__ = ["DataSpec", "EVAL_DATA", "INVARIANTS", "Invariant", "Broken", "TrainCase", "format_failure", "DEFECTS",
           "Defect", "defects_for", "Logged", "LossCall", "TrainRun", "replay", "run", "verify"]
