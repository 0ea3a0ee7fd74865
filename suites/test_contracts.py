"""Contract suite (`pytest suites/ -m contract`): what downstream code may rely on from Trainer.predict() and
evaluate(), as hypothesis property tests over every tiny architecture family, and the committed snapshot check.

The checks live in harness.contracts (ids and wording in `CONTRACTS`), the strategies in harness.contracts.strategies,
per-version expectations in harness.core.compat. Example counts come from the hypothesis profile
(HARNESS_HYPOTHESIS_PROFILE=dev|ci|nightly, `ci` when CI is set). A failure prints the drawn `Case` and a snippet
that reproduces it outside pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness import contracts
from harness.core import compat
from harness.contracts import strategies
from harness.contracts import Case, DataSpec
from harness.core.models import TINY_MODEL_NAMES

pytestmark = pytest.mark.contract

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent / "results" / "contracts"
# One example takes 0.02-0.6 s on one CPU thread once the models are loaded; 10 s leaves room for a busy machine
# and still catches a Trainer that hangs or slows down by orders of magnitude.
CPU_DEADLINE = settings(deadline=timedelta(seconds=10))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[contracts.ContractSession]:
    """Tiny models loaded once for the module, one torch thread, a scratch folder."""
    with contracts.session(tmp_path_factory.mktemp("contracts")) as session:
        session.preload(TINY_MODEL_NAMES)
        yield session


def assert_contracts_hold(lab: contracts.ContractSession, case: Case) -> None:
    violations = lab.check(case)
    assert not violations, contracts.format_failure(case, violations)


@pytest.mark.parametrize("model", TINY_MODEL_NAMES)
@CPU_DEADLINE
@given(data=st.data())
def test_predict_and_evaluate_contracts(lab: contracts.ContractSession, model: str, data: st.DataObject) -> None:
    """One dataset of a drawn size class through predict() (twice, and with another batch size) and evaluate()."""
    assert_contracts_hold(lab, data.draw(strategies.predict_cases(model), label="case"))


@CPU_DEADLINE
@given(case=strategies.evaluate_dict_cases())
@example(case=Case(model="tiny-bert", num_labels=1, eval_dict=True, eval_batch_size=3, metric_key_prefix="val",
                   data=(DataSpec(rows=1), DataSpec(rows=7, seed=1, label_column=None),
                         DataSpec(rows=6, seed=2, label_column="labels")), include_for_metrics=("inputs", "loss")))
def test_evaluate_dict_contracts(lab: contracts.ContractSession, case: Case) -> None:
    """A dict of two or three eval datasets (labeled or not, any size class) through predict() and evaluate()."""
    assert_contracts_hold(lab, case)


@CPU_DEADLINE
@given(case=strategies.trained_cases())
def test_contracts_after_training(lab: contracts.ContractSession, case: Case) -> None:
    """After train() (evaluate() before it or not): eval mode restored, keys as the version reports them."""
    assert_contracts_hold(lab, case)


def test_observed_contract_matches_committed_snapshot(lab: contracts.ContractSession) -> None:
    """Key sets, dtypes, shapes, None-ness, padding and signatures as committed for this transformers version."""
    path = contracts.snapshot_path(SNAPSHOT_DIR, str(compat.TRANSFORMERS_VERSION))
    if not path.exists():
        pytest.skip(f"no contract snapshot is committed for transformers {compat.TRANSFORMERS_VERSION} ({path}); "
                    "record one with `harness contracts snapshot` and commit it")
    committed = contracts.load_snapshot(path)
    observed = contracts.observe(lab)
    changes = contracts.diff(committed, observed)
    assert not changes, (contracts.render_diff(committed, observed, changes)
                         + f"\n\nThe installed libraries no longer match {path}. If the change is intended, "
                           "re-record it with `harness contracts snapshot` and review the diff.")
