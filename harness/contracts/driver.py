"""The one place that drives a `Case` through the real transformers.Trainer and records what came back.

`ContractSession.drive(case)` returns an `Observation`; `check(case)` judges it (harness.contracts.checks) and
harness.contracts.snapshot summarises observations of fixed situations. Exceptions the Trainer raises are
recorded in the observation, not raised.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.contracts import checks
from harness.contracts.cases import (TASK_FOR_NUM_LABELS, TRAIN_DATA, TRAINING, Case, build_rows,
                                     contract_task, eval_set_names, to_dataset)
from harness.contracts.checks import MetricsProbe, reference_logits
from harness.contracts.observation import Evaluated, Observation, Predicted
from harness.core import compat, models


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from two, and on a shared 2-core machine a second OpenMP thread
    that gets descheduled turns a 20 µs matmul into 8 ms (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ContractSession:
    """Tiny models loaded once per (model, num_labels) and a scratch folder; drives one `Case` at a time."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self._loaded: dict[tuple[str, int], models.LoadedModel] = {}

    def loaded(self, model: str, num_labels: int) -> models.LoadedModel:
        """The model with a seeded classifier head, in eval mode; shared: never train it (see `fresh`)."""
        import torch

        key = (model, num_labels)
        if key not in self._loaded:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self._loaded[key] = models.load(models.get_model(model), contract_task(num_labels))
        self._loaded[key].model.eval()
        return self._loaded[key]

    def preload(self, model_names: Sequence[str]) -> None:
        """Load each model for every num_labels now, so that no example pays for it (deadlines stay meaningful)."""
        for name in model_names:
            for num_labels in TASK_FOR_NUM_LABELS:
                self.loaded(name, num_labels)

    def fresh(self, model: str, num_labels: int) -> Any:
        """A private copy of the model, for situations that train it."""
        return copy.deepcopy(self.loaded(model, num_labels).model)

    def trainer(self, case: Case, *, batch_size: int, accumulation: int | None, compute_metrics: Any = None,
                model: Any = None, train_dataset: Any = None, max_steps: int = -1) -> Any:
        from transformers import DataCollatorWithPadding

        loaded = self.loaded(case.model, case.num_labels)
        args = compat.training_arguments(
            output_dir=str(self.workdir / "trainer"), per_device_eval_batch_size=batch_size,
            per_device_train_batch_size=batch_size, max_steps=max_steps, eval_accumulation_steps=accumulation,
            batch_eval_metrics=case.batch_eval_metrics, save_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=True, dataloader_pin_memory=False, **compat.include_for_metrics_arguments(case.include_for_metrics))
        return compat.trainer(model=model if model is not None else loaded.model, args=args,
                              tokenizer=loaded.tokenizer, data_collator=DataCollatorWithPadding(loaded.tokenizer),
                              compute_metrics=compute_metrics, train_dataset=train_dataset)

    def check(self, case: Case) -> list[str]:
        """Every broken contract for `case`, as "[<contract id>] what broke" messages."""
        return checks.violations(self.drive(case))

    def drive(self, case: Case, *, predict: bool = True, evaluate: bool = True) -> Observation:
        """Drive `case` through the Trainer: evaluate() and/or train() first as `case.training` says; then, with
        `predict`, each dataset through predict() (timed, again, at the other batch size) and the per-example
        reference; then, with `evaluate` and every predict() complete, evaluate() on the first dataset or the dict."""
        if case.training not in TRAINING:
            raise ValueError(f"Case.training must be one of {TRAINING}, got {case.training!r}")
        task = contract_task(case.num_labels)
        loaded = self.loaded(case.model, case.num_labels)
        seen = Observation(case, task, loaded.tokenizer.pad_token_id, eval_set_names(case))
        rows = [build_rows(spec, case.num_labels) for spec in case.data]
        sets = {name: to_dataset(r, spec.label_column) for name, r, spec in zip(seen.names, rows, case.data)}
        probe = MetricsProbe(task) if case.compute_metrics else None
        model = loaded.model if case.training == "none" else self.fresh(case.model, case.num_labels)
        trainer = self.trainer(case, batch_size=case.eval_batch_size, accumulation=case.eval_accumulation_steps,
                               compute_metrics=probe, model=model, max_steps=1,
                               train_dataset=to_dataset(build_rows(TRAIN_DATA, case.num_labels), "label"))
        alt = (self.trainer(case, batch_size=case.alt_batch_size, accumulation=case.alt_accumulation_steps,
                            model=model) if predict else None)  # built before train(): Trainer() reseeds torch
        try:
            if case.training == "between":
                trainer.evaluate(sets[seen.names[0]])
            if case.training != "none":
                trainer.train()
        except Exception as err:  # noqa: BLE001 - any exception breaks the contract; the check says which
            seen.train_error = err
            return seen
        kwargs = {"metric_key_prefix": case.metric_key_prefix} if case.metric_key_prefix else {}
        if alt is not None:
            seen.predicted = [_predict(trainer, alt, model, probe, Predicted(name, data), sets[name], kwargs)
                              for name, data in zip(seen.names, rows)]
        if evaluate and all(run.complete for run in seen.predicted):
            seen.evaluated = _evaluate(trainer, probe, sets if case.eval_dict else sets[seen.names[0]], kwargs)
        return seen


def _predict(trainer: Any, alt: Any, model: Any, probe: MetricsProbe | None, run: Predicted, dataset: Any,
             kwargs: Mapping[str, Any]) -> Predicted:
    """Fill `run`: predict() timed, again, on the other Trainer; then the reference forward pass."""
    if probe is not None:
        probe.reset()
    model.train()  # as train() leaves it: predict() must switch to eval mode itself
    try:
        started = time.perf_counter()
        run.output = trainer.predict(dataset, **kwargs)
        run.wall = time.perf_counter() - started
        run.calls = list(probe.calls) if probe is not None else []
        run.again = trainer.predict(dataset, **kwargs)
        run.other = alt.predict(dataset, **kwargs)
    except Exception as err:  # noqa: BLE001
        run.error = err
        return run
    if run.complete:
        run.reference = reference_logits(model, run.rows.ids)  # after predict(), which must not rely on it
    return run


def _evaluate(trainer: Any, probe: MetricsProbe | None, target: Any, kwargs: Mapping[str, Any]) -> Evaluated:
    if probe is not None:
        probe.reset()
    try:
        started = time.perf_counter()
        found = trainer.evaluate(target, **kwargs)
        wall = time.perf_counter() - started
    except Exception as err:  # noqa: BLE001
        return Evaluated(error=err)
    return Evaluated(found, wall, list(probe.calls) if probe is not None else [])


@contextlib.contextmanager
def session(workdir: Path | None = None) -> Iterator[ContractSession]:
    """A ContractSession on one torch thread, with a scratch folder (temporary unless given)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-contracts-")))
        stack.enter_context(single_thread())
        yield ContractSession(workdir)
