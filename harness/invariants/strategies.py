"""Hypothesis strategies for the training invariants: one `TrainCase` builder per invariant, over the six tiny families.

Row counts are drawn relative to batch x accumulation (a partial last micro-batch, a partial last window, exact
multiples), lengths vary so batches pad, and every case stays at a few dozen optimizer steps at most.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from harness.contracts.cases import DataSpec
from harness.core.models import TINY_MODEL_NAMES
from harness.invariants.cases import COLLATORS, LABEL_TYPES, OPTIMIZERS, SCHEDULERS, TrainCase
from harness.invariants.checks import expected_counters
from harness.invariants.registry import INVARIANTS
from harness.invariants import tokenization

models = st.sampled_from(TINY_MODEL_NAMES)
seeds = st.integers(0, 2**16)


@st.composite
def data(draw: st.DrawFn, rows: int) -> DataSpec:
    """`rows` examples of length >= 2 (a training row is told from an evaluation row by its length); one case in
    four has equal lengths (no padding)."""
    low = draw(st.integers(2, 10))
    high = low if draw(st.integers(0, 3)) == 0 else draw(st.integers(low + 1, 20))
    return DataSpec(rows=rows, seed=draw(seeds), min_length=low, max_length=high)


@st.composite
def rows_for(draw: st.DrawFn, step_size: int, most_steps: int = 4) -> int:
    """A row count up to `most_steps` windows of `step_size` examples: exact, or with a partial last window."""
    windows = draw(st.integers(1, most_steps))
    return max(1, windows * step_size - draw(st.integers(0, step_size - 1)))


@st.composite
def cases(draw: st.DrawFn, *, most_batch: int = 4, most_accumulation: int = 3, least_accumulation: int = 1,
          most_epochs: int = 2, most_steps: int = 4) -> TrainCase:
    """The common part: model, labels, data, batch, accumulation, epochs, optimizer and seed."""
    batch = draw(st.integers(1, most_batch))
    accumulation = draw(st.integers(least_accumulation, most_accumulation))
    rows = draw(rows_for(batch * accumulation, most_steps))
    return TrainCase(model=draw(models), num_labels=draw(st.sampled_from((1, 2, 3))), data=draw(data(rows)), batch=batch,
                accumulation=accumulation, epochs=draw(st.integers(1, most_epochs)),
                optimizer=draw(st.sampled_from(OPTIMIZERS)), seed=draw(seeds))


def accumulation_cases() -> st.SearchStrategy[TrainCase]:
    """Accumulation k >= 2 (k = 1 compares a run with itself)."""
    return cases(least_accumulation=2)


@st.composite
def step_cases(draw: st.DrawFn) -> TrainCase:
    """Any size, batch, accumulation and epochs, or max_steps; logging, evaluation and saving every few steps."""
    case = draw(cases(most_batch=6, most_accumulation=4, most_epochs=3))
    max_steps = draw(st.none() | st.integers(1, 8))
    return replace(case, max_steps=max_steps or -1, logging_steps=draw(st.integers(1, 3)),
                   eval_steps=draw(st.none() | st.integers(1, 4)), save_steps=draw(st.none() | st.integers(2, 5)))


@st.composite
def schedule_cases(draw: st.DrawFn) -> TrainCase:
    case = draw(cases(most_epochs=3))
    total = expected_counters(case)["global_step"]
    return replace(case, scheduler=draw(st.sampled_from(SCHEDULERS)), warmup_steps=draw(st.integers(0, total + 1)),
                   learning_rate=draw(st.sampled_from((1e-3, 5e-5, 3e-4))))


@st.composite
def resume_cases(draw: st.DrawFn) -> TrainCase:
    """A checkpoint inside the run (mid-epoch or at an epoch end), dropout on or off, any scheduler. Two epochs, so
    that any plan of at least one step per epoch has a step after the checkpoint (the driver moves a checkpoint
    drawn past a shorter plan back inside it)."""
    case = replace(draw(cases(most_epochs=2)), epochs=2)
    total = expected_counters(case)["global_step"]
    return replace(case, interrupt_at=draw(st.integers(1, total - 1)), dropout=draw(st.booleans()),
                   scheduler=draw(st.sampled_from(SCHEDULERS)), weight_decay=draw(st.sampled_from((0.0, 0.01))))


@st.composite
def determinism_cases(draw: st.DrawFn) -> TrainCase:
    return replace(draw(cases()), dropout=draw(st.booleans()), data_seed=draw(st.none() | seeds))


@st.composite
def data_seed_cases(draw: st.DrawFn) -> TrainCase:
    """The partner has seed + 1 and `alt_data_seed`: the same sampling seed (same order) or another."""
    case = draw(cases(most_epochs=3))
    own = draw(st.none() | seeds)
    same = own if own is not None else case.seed
    return replace(case, data_seed=own, alt_data_seed=draw(st.sampled_from((same, same + 1))))


@st.composite
def loss_cases(draw: st.DrawFn) -> TrainCase:
    return replace(draw(cases()), snapshots=True, logging_steps=draw(st.integers(1, 3)))


@st.composite
def zero_loss_cases(draw: st.DrawFn, decays: tuple[float, ...] = (0.0, 0.01, 0.1)) -> TrainCase:
    """The compute_loss subclass scaling the loss by 0, with one of `decays` as weight decay."""
    return replace(draw(cases()), loss_scale=0.0, weight_decay=draw(st.sampled_from(decays)), snapshots=True,
                   learning_rate=draw(st.sampled_from((1e-3, 1e-2))))


def weight_decay_cases() -> st.SearchStrategy[TrainCase]:
    return zero_loss_cases(decays=(0.01, 0.1))


@st.composite
def dtype_cases(draw: st.DrawFn) -> TrainCase:
    return replace(draw(cases(most_epochs=1, most_steps=2)), precision=draw(st.sampled_from(("bf16", "bf16-weights"))))


@st.composite
def best_checkpoint_cases(draw: st.DrawFn) -> TrainCase:
    """Evaluating and saving every 1-3 steps at a learning rate high enough for the eval loss to go up and down;
    the metric by its full or short name, either direction, a save limit and an early-stopping patience or not."""
    case = draw(cases(most_epochs=3))
    return replace(case, eval_steps=draw(st.integers(1, 3)), best_metric=draw(st.sampled_from(("eval_loss", "loss"))),
                   greater_is_better=draw(st.sampled_from((None, False, True))),
                   save_total_limit=draw(st.none() | st.integers(1, 2)), patience=draw(st.none() | st.integers(1, 3)),
                   learning_rate=draw(st.sampled_from((1e-3, 2e-2))))


@st.composite
def resume_output_cases(draw: st.DrawFn) -> TrainCase:
    """A resume case logging every step (training_loss is checked against the logged step losses)."""
    return replace(draw(resume_cases()), logging_steps=1)


@st.composite
def predict_cases(draw: st.DrawFn) -> TrainCase:
    """A short training, then predict() on 1-20 rows of other lengths under every evaluation setting."""
    case = draw(cases(most_epochs=1, most_steps=2))
    rows = draw(st.integers(1, 20))
    return replace(case, predict_data=draw(data(rows)),
                   eval_batch=draw(st.integers(1, 8)), eval_accumulation=draw(st.none() | st.integers(1, 3)),
                   drop_last=draw(st.booleans()), group_by_length=draw(st.booleans()))


@st.composite
def loss_option_cases(draw: st.DrawFn) -> TrainCase:
    """Accumulation over full windows (rows a multiple of batch x k) through a loss path other than the model's."""
    case = draw(cases(least_accumulation=2))
    rows = case.batch * case.accumulation * draw(st.integers(1, 3))
    paths = ("label_smoothing", "custom_mean", "class_weights") if case.num_labels > 1 else ("custom_mean",)
    return replace(case, data=replace(case.data, rows=rows), loss_path=draw(st.sampled_from(paths)))


@st.composite
def collation_cases(draw: st.DrawFn) -> TrainCase:
    case = draw(cases(most_epochs=1, most_steps=2))
    return replace(case, collator=draw(st.sampled_from(COLLATORS)), label_type=draw(st.sampled_from(LABEL_TYPES)))


def tokenizer_cases() -> st.SearchStrategy[tokenization.TokenizerCase]:
    """local_tokenizer: vocab-file tokenizers over the installed tokenizer classes."""
    return tokenization.tokenizer_cases()


# ------------------------------------------------------------------------------------------------ your settings

def tiny_family(model: str) -> str:
    """The tiny model of a checkpoint's architecture family (its config.json model_type), else tiny-bert."""
    import json
    from pathlib import Path

    from harness.core.models import TINY_FAMILIES, get_model

    spec = get_model(model)
    family = spec.source if spec.kind == "tiny" else None
    if family is None and spec.kind == "local":
        try:
            family = json.loads((Path(spec.source) / "config.json").read_text()).get("model_type")
        except (OSError, ValueError):
            family = None
    if family is None:
        family = "bert" if spec.kind == "packaged" else next((f for f in TINY_FAMILIES if f in model.lower()), None)
    return f"tiny-{family}" if family in TINY_FAMILIES else "tiny-bert"


def around(invariant: str, witness: TrainCase, config: object) -> TrainCase:  # local_tokenizer: a TokenizerCase
    """The invariant's witness with a user's settings where the check can take them: accumulation, scheduler,
    optimizer, warm-up, precision (bf16, where the check does not compare numbers across runs) and model family."""
    if invariant == "local_tokenizer":
        return witness  # built from the packaged checkpoint's vocabulary: nothing of yours to map onto it
    accumulation = getattr(config, "gradient_accumulation_steps", 1)
    scheduler = getattr(config, "lr_scheduler_type", "linear")
    optimizer = getattr(config, "optim", None)
    changes: dict[str, object] = {"model": tiny_family(getattr(config, "model", "tiny-bert"))}
    if invariant != "compute_loss" or accumulation > 1:
        changes["accumulation"] = accumulation
    if scheduler in SCHEDULERS:
        changes["scheduler"] = scheduler
    if optimizer in OPTIMIZERS:
        changes["optimizer"] = optimizer
    if getattr(config, "warmup_steps", None):
        changes["warmup_steps"] = min(int(config.warmup_steps), 3)  # type: ignore[attr-defined]
    if getattr(config, "precision", "fp32") == "bf16" and not INVARIANTS[invariant].fp32_only:
        changes["precision"] = "bf16"
    if invariant == "predict_rows":  # your evaluation settings
        changes["group_by_length"] = bool(getattr(config, "group_by_length", False))
        changes["eval_batch"] = getattr(config, "eval_batch_size", None) or witness.eval_batch
        changes["eval_accumulation"] = getattr(config, "eval_accumulation_steps", None)
    if invariant == "loss_options" and getattr(config, "trainer_class", None):
        changes["loss_path"] = "custom_mean"  # your Trainer subclass may compute the loss itself
    elif invariant == "loss_options" and getattr(config, "label_smoothing_factor", 0.0):
        changes["loss_path"] = "label_smoothing"
    case = replace(witness, **changes)
    if invariant == "loss_options":  # k >= 2 micro-batches against one batch, over full windows
        k = case.accumulation if case.accumulation > 1 else witness.accumulation
        case = replace(case, accumulation=k, data=replace(case.data, rows=2 * k * case.batch))
    if case.max_steps > 0 or case.interrupt_at is None:
        return case
    planned = case.epochs * -(-case.batches_per_epoch // case.accumulation)
    return case if case.interrupt_at < planned else replace(case, interrupt_at=max(1, planned - 1))
