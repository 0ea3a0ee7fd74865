"""Every train() invariant turns red on a matching Trainer fault, naming its setting and the first bad step.

Each fault patches transformers.Trainer (or harness.core.compat) the way a library regression would, runs the check
the training suite runs on the invariant's witness case, and asserts the invariant is reported at the expected
step. The unpatched witness must pass first, so a fault test cannot pass on a check that always fails. Known
defects of the installed transformers that would break a witness anyway are worked around here (WORKAROUNDS).
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import transformers
import transformers.trainer

from harness.core import compat
from harness.invariants import INVARIANTS, defects, verify

from test_contracts_faults import wrap  # Trainer.<name> with a `before(self, *args)` and an `after(self, result)`

Patch = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Fault:
    name: str
    invariant: str
    step: int | None  # the first bad step the report must name (None: not tied to a step)
    inject: Patch


# ------------------------------------------------------------------ patch builders


def replace_with(name: str, value: Any, owner: Any = transformers.Trainer) -> Patch:
    return lambda monkeypatch: monkeypatch.setattr(owner, name, value)


def divide_by_accumulation(self: Any, loss: Any) -> Any:
    return loss / self.args.gradient_accumulation_steps


def floor_steps_per_epoch(self: Any, *args: Any) -> None:
    """Train for epochs x floor(batches / accumulation) steps, as 4.46-4.51 planned."""
    batches = len(self.get_train_dataloader())
    if self.args.max_steps <= 0:
        self.args.max_steps = int(self.args.num_train_epochs) * max(batches // self.args.gradient_accumulation_steps, 1)


def step_scheduler_once(self: Any, scheduler: Any) -> Any:
    scheduler.step()
    return scheduler


def next_steps_rate(self: Any) -> float:
    """The rate the scheduler gives the next step, where the log should show the one just applied (LambdaLR)."""
    scheduler = self.lr_scheduler
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](scheduler.last_epoch + 1)


def cast_to_bf16(self: Any, *args: Any) -> None:
    self.model.to(torch.bfloat16)


def running_mean_loss(self: Any, logs: dict[str, Any], *args: Any) -> None:
    """Log the mean of every loss logged so far instead of the mean since the previous log."""
    if "loss" in logs:
        history = self.__dict__.setdefault("_fault_losses", [])
        history.append(logs["loss"])
        logs["loss"] = sum(history) / len(history)


def without_data_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    original = compat.training_arguments
    monkeypatch.setattr(compat, "training_arguments", lambda **kwargs: original(**{**kwargs, "data_seed": None}))


def bypass_override(self: Any, *args: Any) -> None:
    """The Trainer computes its own loss instead of calling the subclass's compute_loss."""
    self.compute_loss = types.MethodType(transformers.Trainer.compute_loss, self)


def all_parameters(self: Any, model: Any) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def halve_training_loss(self: Any, result: Any) -> Any:
    """train() returns half the mean loss (as if it divided by steps it did not take)."""
    return transformers.trainer_utils.TrainOutput(result.global_step, result.training_loss / 2, result.metrics)


def reversed_order(self: Any, dataset: Any) -> Any:
    """Evaluate the rows last to first (a sampler that shuffles evaluation)."""
    return list(range(len(dataset)))[::-1]


def float_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """default_data_collator turns integer labels into floats (the library's guess for anything but a Python int)."""
    original = transformers.default_data_collator

    def collate(features: list[dict[str, Any]], return_tensors: str = "pt") -> dict[str, Any]:
        batch = original(features, return_tensors)
        batch["labels"] = batch["labels"].float()
        return batch

    monkeypatch.setattr(transformers, "default_data_collator", collate)


# ------------------------------------------------------------------ the faults

FAULTS: tuple[Fault, ...] = (
    Fault("loss divided by the accumulation steps twice", "accumulation", 1,
          wrap("compute_loss", after=divide_by_accumulation)),
    Fault("optimizer steps per epoch rounded down", "steps", 5, wrap("train", before=floor_steps_per_epoch)),
    Fault("scheduler one step ahead", "schedule", 1, wrap("create_scheduler", after=step_scheduler_once)),
    Fault("learning rate logged one step late", "schedule", 1, replace_with("_get_learning_rate", next_steps_rate)),
    Fault("resume drops the RNG state", "resume", 3, replace_with("_load_rng_state", lambda self, checkpoint: None)),
    Fault("checkpoint loaded in bf16", "resume", 3, wrap("_load_from_checkpoint", after=cast_to_bf16)),
    Fault("seed not applied", "determinism", 1, replace_with("set_seed", lambda *a, **k: None, transformers.trainer)),
    Fault("data_seed ignored", "data_seed", None, without_data_seed),
    Fault("logged loss is the running mean since the start", "loss", 4, wrap("log", before=running_mean_loss)),
    Fault("weight decay on biases and LayerNorm", "weight_decay", 1,
          replace_with("get_decay_parameter_names", all_parameters)),
    Fault("an overriding compute_loss is bypassed", "compute_loss", 1, wrap("training_step", before=bypass_override)),
    Fault("parameters cast to bf16 under bf16 autocast", "dtype", 1, wrap("create_optimizer", before=cast_to_bf16)),
    Fault("the best checkpoint is not loaded at the end", "best_checkpoint", 6,
          replace_with("_load_best_model", lambda self: None)),
    Fault("a resumed train() returns half its mean loss", "resume_outputs", None,
          wrap("train", after=halve_training_loss)),
    Fault("evaluation rows in reverse order", "predict_rows", None, replace_with("_get_eval_sampler", reversed_order)),
    Fault("the label-smoothed loss divided by the accumulation steps twice", "loss_options", 1,
          wrap("compute_loss", after=divide_by_accumulation)),
    Fault("default_data_collator hands the model float labels", "collation", 1, float_labels),
)

# How to train without a known defect, so that its invariant's witness is clean and only the fault breaks it (keyed
# by defect id, or by (defect id, invariant) where one invariant's witness needs another).
WORKAROUNDS: dict[str | tuple[str, str], Patch] = {
    # the Trainer divides by the accumulation steps itself, exact for the witnesses' full micro-batches
    "ga-loss-kwargs-dropped": replace_with("loss_is_scaled_for_ga", False),
    # the witnesses have full micro-batches only, where a mean of means is the mean
    "ga-mean-of-micro-batch-means": lambda monkeypatch: None,
    # each TrainingArguments starts from an environment without the previous one's precision
    "bf16-env-leak": lambda monkeypatch: wrap_post_init(monkeypatch),
    # the predict_rows witness does not group by length
    "eval-order-grouped-by-length": lambda monkeypatch: None,
    # the loss_options witness smooths labels, a path the Trainer divides by the accumulation steps itself
    ("ga-loss-kwargs-dropped", "loss_options"): lambda monkeypatch: None,
}


def wrap_post_init(monkeypatch: pytest.MonkeyPatch) -> None:
    original = transformers.TrainingArguments.__post_init__

    def patched(self: Any) -> None:
        os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        original(self)

    monkeypatch.setattr(transformers.TrainingArguments, "__post_init__", patched)


@pytest.fixture
def sound(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Apply the workarounds for the installed version's known defects of an invariant."""
    def apply(invariant: str) -> None:
        for defect in defects.defects_for(compat.TRANSFORMERS_VERSION, invariant):
            workaround = WORKAROUNDS.get((defect.id, invariant), WORKAROUNDS.get(defect.id))
            if workaround is None:
                pytest.skip(f"known defect {defect.id} breaks the {invariant} witness and has no workaround here")
            workaround(monkeypatch)
    yield apply


@pytest.mark.parametrize("invariant", sorted({f.invariant for f in FAULTS}))
def test_witness_passes_unpatched(sound: Callable[[str], None], invariant: str) -> None:
    sound(invariant)
    broken = verify(invariant, INVARIANTS[invariant].witness)
    assert not broken, "\n".join(map(str, broken))


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_breaks_its_invariant(sound: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
                                    fault: Fault) -> None:
    sound(fault.invariant)
    fault.inject(monkeypatch)
    broken = verify(fault.invariant, INVARIANTS[fault.invariant].witness)
    assert broken, f"fault {fault.name!r} should break [{fault.invariant}]; nothing was reported"
    assert {b.invariant for b in broken} == {fault.invariant}
    assert min((b.step for b in broken if b.step is not None), default=None) == fault.step, (
        f"fault {fault.name!r}: expected the first bad step {fault.step}, got {[str(b) for b in broken]}")
    assert all(str(b).startswith(f"[{fault.invariant}] ") and len(b.setting) > 20 for b in broken), broken
    assert all(f"step {b.step}" in b.detail for b in broken if b.step is not None), "a step break names its step"


@pytest.mark.parametrize("invariant", ["weight_decay", "compute_loss"])
def test_a_wrong_logged_rate_breaks_only_the_schedule(sound: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
                                                     invariant: str) -> None:
    """The decay law of these checks reads the rate the optimizer applied, not the log (4.46-4.50 logged the next
    step's rate: a schedule defect, which must not turn these two red)."""
    sound(invariant)
    next(f for f in FAULTS if f.name == "learning rate logged one step late").inject(monkeypatch)
    broken = verify(invariant, INVARIANTS[invariant].witness)
    assert not broken, "\n".join(map(str, broken))


def test_every_invariant_has_a_fault() -> None:
    covered = {f.invariant for f in FAULTS} | {"local_tokenizer"}  # its faults: tests/test_training_tokenizer.py
    assert covered == set(INVARIANTS), f"invariants without a fault test: {set(INVARIANTS) - covered}"
