"""The one place that runs the real transformers.Trainer for a training `TrainCase` and records what train() did.

`run(case)` returns an `TrainRun`: per-step logs, parameters before and after as numpy, state counters, the
steps at which it evaluated and saved, the examples of every micro-batch, and whatever the case asks to keep.
`replay(observation)` recomputes the logged losses outside the Trainer; `verify(invariant, case)` runs a case and
its partner and returns the broken invariants (harness.invariants.checks).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.contracts.cases import build_rows, contract_task, to_dataset
from harness.contracts.driver import single_thread
from harness.core import compat, models
from harness.core.runner import scratch_dir
from harness.invariants.cases import CLASS_WEIGHTS, EVAL_DATA, Broken, TrainCase
from harness.invariants.observation import Logged, LossCall, TrainRun, Predicted
from harness.invariants.registry import INVARIANTS
from harness.invariants.tokenization import TokenizerCase


# ------------------------------------------------------------------ models


@functools.lru_cache(maxsize=None)
def _base(model: str, num_labels: int, dtype: str) -> models.LoadedModel:
    """The model with a seeded head, its weights loaded in `dtype` as a user would load them; shared, so every run
    trains a deep copy."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return models.load(models.get_model(model), contract_task(num_labels), dtype=dtype)


def _loaded(case: TrainCase) -> models.LoadedModel:
    return _base(case.model, case.num_labels, "bfloat16" if case.precision == "bf16-weights" else "float32")


def _without_dropout(model: Any) -> Any:
    """`model` with every nn.Dropout, float `*dropout*` module attribute (4.x SDPA attention reads one), DeBERTa's
    StableDropout `drop_prob` (4.46-4.4x) and config value zeroed; refuses a model whose train-mode forward still
    differs from its eval-mode one."""
    import torch

    for owner in (model.config, *model.modules()):
        if isinstance(owner, torch.nn.Dropout):
            owner.p = 0.0
        for name, value in list(vars(owner).items()):
            if ("dropout" in name or name == "drop_prob") and isinstance(value, float):
                setattr(owner, name, 0.0)
    ids = torch.arange(1000, 1012).reshape(2, 6)
    with torch.no_grad():
        model.train()
        trained = model(input_ids=ids).logits
        model.eval()
        evaluated = model(input_ids=ids).logits
        # NaN where the other has NaN counts as equal: broken weights are for the invariants to report, not dropout
        if not bool(((trained == evaluated) | (trained.isnan() & evaluated.isnan())).all()):
            raise RuntimeError(f"{type(model).__name__} still drops out with every nn.Dropout at p=0: the training "
                               "invariants need exact train-mode arithmetic")
    return model


def fresh_model(case: TrainCase) -> Any:
    model = copy.deepcopy(_loaded(case).model)
    return model if case.dropout else _without_dropout(model)


def _numpy(model: Any) -> dict[str, np.ndarray]:
    return {name: p.detach().float().cpu().numpy().copy() for name, p in model.named_parameters()}


def _dtypes(model: Any) -> dict[str, str]:
    return {name: str(p.dtype).removeprefix("torch.") for name, p in model.named_parameters()}


def _norm_params(model: Any) -> frozenset[str]:
    return frozenset(f"{module_name}.{name}" if module_name else name
                     for module_name, module in model.named_modules()
                     if type(module).__name__.endswith(("LayerNorm", "RMSNorm"))
                     for name, _ in module.named_parameters(recurse=False))


# ------------------------------------------------------------------ recording


class _Recorder:
    """Which examples each training micro-batch held (from the model's forward inputs), the output dtypes of its
    Linear layers (where autocast acts) and, with `keep`, the collated training batches (the collator's output)."""

    def __init__(self, index: Mapping[tuple[int, ...], int], keep: bool) -> None:
        self.index, self.keep = index, keep
        self.batches: list[tuple[int, ...]] = []
        self.collated: list[dict[str, Any]] = []
        self.dtypes: set[str] = set()
        self.label_dtypes: set[str] = set()

    def rows(self, input_ids: Any, attention_mask: Any) -> tuple[int, ...] | None:
        """The example index of each row of a padded batch; None when some row is not a training example."""
        found = tuple(self.index.get(tuple(ids[keep.bool()].tolist()), -1)
                      for ids, keep in zip(input_ids, attention_mask))
        return None if -1 in found else found

    def collator(self, collate: Callable[[list[dict[str, Any]]], Any]) -> Callable[[list[dict[str, Any]]], Any]:
        """`collate`, keeping a copy of each training batch it builds (it may run ahead of the training step)."""
        def keeping(features: list[dict[str, Any]]) -> Any:
            batch = collate(features)
            if self.rows(batch["input_ids"], batch["attention_mask"]) is not None:
                if "labels" in batch:
                    self.label_dtypes.add(str(batch["labels"].dtype).removeprefix("torch."))
                if self.keep:
                    self.collated.append({k: v.clone() for k, v in batch.items()})
            return batch
        return keeping

    def attach(self, model: Any) -> None:
        import torch

        def before(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            rows = self.rows(kwargs["input_ids"], kwargs["attention_mask"]) if module.training else None
            if rows is not None:
                self.batches.append(rows)

        def after(module: Any, args: Any, output: Any) -> None:
            if module.training and torch.is_tensor(output):
                self.dtypes.add(str(output.dtype).removeprefix("torch."))

        model.register_forward_pre_hook(before, with_kwargs=True)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(after)


def interruption(case: TrainCase, planned: int) -> int | None:
    """The step after which the first Trainer of a resume case stops with a checkpoint: `case.interrupt_at`, moved
    back inside the Trainer's own plan of `planned` steps when it lies past the last step but one (a version that
    plans fewer steps than documented would otherwise never write it); None when no step has one after it."""
    if case.interrupt_at is None or planned < 2:
        return None
    return min(case.interrupt_at, planned - 1)


@dataclass
class _Seen:
    """What the callback sees of train(), per optimizer step, evaluation and save."""

    windows: list[int] = field(default_factory=list)  # micro-batches per optimizer step
    evaluated: list[int] = field(default_factory=list)  # global_step at each evaluation
    saved: list[int] = field(default_factory=list)  # global_step at each save
    after: list[dict[str, np.ndarray]] = field(default_factory=list)  # parameters after each step (case.snapshots)
    dtypes: list[dict[str, str]] = field(default_factory=list)  # parameter dtypes after each step
    lrs: list[float] = field(default_factory=list)  # the rate each step applied
    saved_params: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # at each save (case.best_metric)
    interrupt: int | None = None  # the step the first part stops at (case.interrupt_at, moved inside the plan)
    planned: int = 0  # state.max_steps of the first part


def _callback(case: TrainCase, recorder: _Recorder, seen: _Seen) -> Any:
    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if case.interrupt_at is not None:
                seen.interrupt, seen.planned = interruption(case, state.max_steps), state.max_steps

        def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              **kwargs: Any) -> None:
            # after optimizer.step(), before the scheduler steps: the rate this step applied, whatever is logged
            groups = optimizer.param_groups if optimizer is not None else []
            decayed = [g for g in groups if g.get("weight_decay", 0) > 0] or groups
            seen.lrs.append(float(decayed[0]["lr"]) if decayed else math.nan)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            seen.windows.append(len(recorder.batches) - sum(seen.windows))
            seen.dtypes.append(_dtypes(model))
            if case.snapshots:  # here, not at on_step_begin: 4.46 begins a step it does not take at an epoch's end
                seen.after.append(_numpy(model))
            if case.interrupt_at is not None and state.global_step == seen.interrupt:
                control.should_save = control.should_training_stop = True

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.evaluated.append(state.global_step)

        def on_save(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            seen.saved.append(state.global_step)
            if case.best_metric is not None and model is not None:
                seen.saved_params[state.global_step] = _numpy(model)

    return Record()


def _scaled_loss_trainer(scale: float, recorder: _Recorder, calls: list[LossCall]) -> type:
    """A Trainer subclass overriding compute_loss with the documented signature: the stock loss times `scale`."""
    import transformers

    class ScaledLoss(transformers.Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            rows = recorder.rows(inputs["input_ids"], inputs["attention_mask"])
            calls.append(LossCall(rows or (), None if num_items_in_batch is None else int(num_items_in_batch)))
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            return (loss * scale, outputs) if return_outputs else loss * scale

    return ScaledLoss


def _loss_path_trainer(case: TrainCase) -> type:
    """A Trainer subclass computing the loss itself, as users write one: the mean cross-entropy (MSE for
    regression), or each example's cross-entropy times its class weight, averaged; num_items_in_batch is ignored."""
    import torch
    import transformers

    weighted = case.loss_path == "class_weights"

    class OwnLoss(transformers.Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits
            if logits.shape[-1] == 1:
                loss = torch.nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
                weights = torch.tensor(CLASS_WEIGHTS, dtype=each.dtype, device=each.device)[labels]
                loss = (each * weights).mean() if weighted else each.mean()
            return (loss, outputs) if return_outputs else loss

    return OwnLoss


def _datasets(case: TrainCase) -> dict[str, Any]:
    """The train and eval datasets: a datasets.Dataset, or a plain list holding labels as `case.label_type` says and,
    for default_data_collator (which does not pad), every row padded to the longest."""
    import torch

    train, evaluation = build_rows(case.data, case.num_labels), build_rows(EVAL_DATA, case.num_labels)
    if case.label_type == "int" and case.collator != "default":
        return {"train_dataset": to_dataset(train, "label"), "eval_dataset": to_dataset(evaluation, "label")}
    width = max(len(ids) for ids in (*train.ids, *evaluation.ids)) if case.collator == "default" else 0
    as_label = {"int": lambda v: v, "numpy": lambda v: np.asarray(v)[()],
                "tensor": lambda v: torch.tensor(v)}[case.label_type]

    def rows(built: Any) -> list[dict[str, Any]]:
        return [{"input_ids": ids + [0] * (width - len(ids)),
                 "attention_mask": [1] * len(ids) + [0] * (width - len(ids)), "label": as_label(label)}
                for ids, label in zip(built.ids, built.labels)]

    return {"train_dataset": rows(train), "eval_dataset": rows(evaluation)}


def _collator(case: TrainCase, tokenizer: Any) -> Any:
    from transformers import DataCollatorWithPadding, default_data_collator

    if case.collator == "default":
        return default_data_collator
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if case.collator == "padding-8" else None)


# ------------------------------------------------------------------ the run


def _arguments(case: TrainCase, output_dir: Path) -> Any:
    selecting = case.best_metric is not None
    saving = case.save_steps is not None or case.interrupt_at is not None or selecting
    selection = ({"load_best_model_at_end": True, "metric_for_best_model": case.best_metric,
                  "greater_is_better": case.greater_is_better} if selecting else {})
    return compat.training_arguments(
        **selection, save_total_limit=case.save_total_limit, per_device_eval_batch_size=case.eval_batch,
        eval_accumulation_steps=case.eval_accumulation, dataloader_drop_last=case.drop_last,
        group_by_length=case.group_by_length or None,
        label_smoothing_factor=0.1 if case.loss_path == "label_smoothing" else None,
        output_dir=str(output_dir), per_device_train_batch_size=case.batch,
        gradient_accumulation_steps=case.accumulation, num_train_epochs=case.epochs, max_steps=case.max_steps,
        learning_rate=case.learning_rate, optim=case.optimizer, weight_decay=case.weight_decay,
        lr_scheduler_type=case.scheduler, warmup_steps=case.warmup_steps, seed=case.seed, data_seed=case.data_seed,
        logging_strategy="steps", logging_steps=case.logging_steps,
        eval_strategy="steps" if case.eval_steps else "no", eval_steps=case.eval_steps,
        save_strategy="steps" if saving else "no",
        save_steps=case.eval_steps if selecting else case.save_steps or 10**9,
        bf16=case.precision == "bf16", fp16=case.precision == "fp16", report_to="none", disable_tqdm=True,
        use_cpu=case.device == "cpu", dataloader_pin_memory=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings and no progress bars (checkpoint writing has one) while the Trainer runs."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def run(case: TrainCase) -> TrainRun:
    """Train a fresh copy of the case's model with the real Trainer on one torch thread and record what happened.
    With `interrupt_at`, training stops after that step (see `interruption`) with a checkpoint, and a fresh Trainer
    with a fresh model resumes from it; with `predict_data`, predict() runs twice on the trained weights. Exceptions
    train() raises are recorded, not raised; process-wide state the Trainer changes stays changed (see `verify`)."""
    rows = build_rows(case.data, case.num_labels)
    recorder = _Recorder({tuple(ids): i for i, ids in reversed(list(enumerate(rows.ids)))}, keep=case.snapshots)
    tokenizer = _loaded(case).tokenizer
    datasets = _datasets(case)
    seen = _Seen()
    calls: list[LossCall] = []
    observed, result = TrainRun(case), None
    with single_thread(), scratch_dir("training") as folder, _quiet():
        for part in ("first", "resumed") if case.interrupt_at else ("whole",):
            model = fresh_model(case)
            recorder.attach(model)
            if part != "resumed":
                observed.initial = _numpy(model)
            trainer = compat.trainer(model=model, args=_arguments(case, folder), tokenizer=tokenizer,
                                     data_collator=recorder.collator(_collator(case, tokenizer)),
                                     trainer_class=_subclass(case, recorder, calls), **datasets)
            trainer.add_callback(_callback(replace(case, interrupt_at=None) if part == "resumed" else case,
                                           recorder, seen))
            if case.patience is not None:
                from transformers import EarlyStoppingCallback

                trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=case.patience))
            checkpoint = None
            if part == "resumed":
                observed.interrupted_at = seen.interrupt
                if observed.interrupted_at is None:
                    observed.error = ValueError(f"the Trainer planned {seen.planned} step(s), so no "
                                                "checkpoint lies inside the run to resume from")
                    break
                checkpoint = folder / f"checkpoint-{observed.interrupted_at}"
            try:
                result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            except Exception as err:  # noqa: BLE001 - recorded; the invariants report it
                observed.error, result = err, None
                break
        _fill(observed, trainer, result)
        observed.on_disk = tuple(sorted(int(p.name.rpartition("-")[2]) for p in folder.glob("checkpoint-*")))
        if case.predict_data is not None and observed.error is None:
            _predict(observed, trainer)
    observed.batches, observed.collated = tuple(recorder.batches), tuple(recorder.collated)
    # each step starts from the parameters the previous one ended with (the first from the initial ones)
    observed.windows = tuple(seen.windows)
    observed.snapshots = (observed.initial, *seen.after[:-1]) if seen.after else ()
    observed.step_dtypes, observed.step_lrs = tuple(seen.dtypes), tuple(seen.lrs)
    observed.evaluated_at, observed.saved_at = tuple(seen.evaluated), tuple(seen.saved)
    observed.loss_calls, observed.forward_dtypes = tuple(calls), frozenset(recorder.dtypes)
    observed.saved_params, observed.label_dtypes = dict(seen.saved_params), frozenset(recorder.label_dtypes)
    return observed


def _subclass(case: TrainCase, recorder: _Recorder, calls: list[LossCall]) -> type | None:
    if case.loss_scale is not None and case.loss_path != "model":
        raise ValueError("TrainCase.loss_scale and TrainCase.loss_path both override compute_loss: give one")
    if case.loss_scale is not None:
        return _scaled_loss_trainer(case.loss_scale, recorder, calls)
    return _loss_path_trainer(case) if case.loss_path in ("custom_mean", "class_weights") else None


def _predict(observed: TrainRun, trainer: Any) -> None:
    """predict() twice on the case's prediction rows, and each row's logits from a forward of that row alone."""
    import torch

    case = observed.case
    rows = build_rows(case.predict_data, case.num_labels)
    dataset = to_dataset(rows, "label")
    outputs = [trainer.predict(dataset) for _ in range(2)]
    observed.predicted = tuple(Predicted(np.asarray(o.predictions), None if o.label_ids is None
                                         else np.asarray(o.label_ids), dict(o.metrics)) for o in outputs)
    model = trainer.model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        observed.alone = np.stack([model(input_ids=torch.tensor([ids], device=device)).logits[0].float().cpu().numpy()
                                   for ids in rows.ids])


def _fill(observed: TrainRun, trainer: Any, result: Any) -> None:
    """Copy the trainer's state, logs, optimizer groups and parameters into `observed`."""
    model, state = trainer.model, trainer.state
    names = {id(p): n for n, p in model.named_parameters()}
    observed.logs = tuple(Logged(e["step"], e["loss"], e.get("grad_norm"), e["learning_rate"], e["epoch"])
                          for e in state.log_history if "loss" in e)
    observed.params, observed.dtypes = _numpy(model), _dtypes(model)
    observed.global_step, observed.epoch, observed.max_steps = state.global_step, state.epoch or 0.0, state.max_steps
    observed.log_entries = len(state.log_history)
    observed.norm_params = _norm_params(model)
    observed.declared_decay = frozenset(trainer.get_decay_parameter_names(model))
    if trainer.optimizer is not None:
        observed.decay_groups = tuple((g["weight_decay"], frozenset(names[id(p)] for p in g["params"]))
                                      for g in trainer.optimizer.param_groups)
    if trainer.lr_scheduler is not None:
        observed.final_lr = float(trainer.lr_scheduler.get_last_lr()[0])
    if result is not None:
        observed.train_loss = result.training_loss
        observed.train_metrics = dict(result.metrics)
    observed.final_log = dict(state.log_history[-1]) if state.log_history else {}
    observed.evaluations = tuple((e["step"], e) for e in state.log_history if "eval_loss" in e)
    observed.best_metric = state.best_metric
    observed.best_checkpoint = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
    observed.problem_type = getattr(model.config, "problem_type", None)


def replay(observed: TrainRun) -> TrainRun:
    """The observation with every logged loss and train_loss recomputed outside the Trainer: each step's loss is the
    mean per-example loss of its micro-batches under the parameters the step started from (needs case.snapshots)."""
    import torch

    if len(observed.snapshots) != len(observed.windows):
        raise ValueError("replay needs a run with TrainCase(snapshots=True) that finished its steps")
    batches = iter(observed.collated)
    step_losses = []
    with single_thread(), torch.no_grad(), _quiet():  # 4.54's BERT family warns of a deprecated mask argument
        model = fresh_model(observed.case).eval()
        for params, window in zip(observed.snapshots, observed.windows):
            model.load_state_dict({n: torch.from_numpy(p) for n, p in params.items()}, strict=False)
            weighted = [(float(model(**batch).loss), len(batch["input_ids"]))
                        for batch in (next(batches) for _ in range(window))]
            step_losses.append(sum(loss * n for loss, n in weighted) / sum(n for _, n in weighted))
    logs, last = [], 0
    for entry in observed.logs:
        logs.append(replace(entry, loss=float(np.mean(step_losses[last:entry.step]))))
        last = entry.step
    return replace(observed, logs=tuple(logs), train_loss=float(np.mean(step_losses)) if step_losses else math.nan)


def verify(invariant: str, case: TrainCase | TokenizerCase) -> list[Broken]:
    """Run `case`, then the partner its invariant compares it with (or the replay), and check them. The process
    environment is restored afterwards: what the first run leaves there reaches the partner (that is how the
    dtype invariant sees 4.x's bf16 setting leak into the next Trainer), never the next check."""
    spec = INVARIANTS[invariant]
    if not spec.trains:
        return spec.check(case)
    with _restored_environment():
        observed = run(case)
        if spec.replayed:
            reference = replay(observed) if observed.error is None else None
        else:
            reference = run(spec.partner(case)) if spec.partner is not None else None
    return spec.judge(observed, reference)


@contextlib.contextmanager
def _restored_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
