"""Hypothesis strategies for the contract suite: small typed builders composed into `harness.contracts.Case`s.

Sizes are drawn relative to the eval batch size (one row, fewer than a batch, an exact multiple, a multiple plus
a partial batch) so the boundary cases come up in every run; token ids come from a drawn seed, which keeps each
example cheap and its printed repr short enough to paste.
"""

from __future__ import annotations

from hypothesis import strategies as st

from harness.contracts.cases import EVAL_SET_NAMES, TASK_FOR_NUM_LABELS, Case, DataSpec
from harness.core.models import TINY_MODEL_NAMES

SIZE_CLASSES = ("one", "below_batch", "multiple", "not_multiple")
MAX_BATCH_SIZE = 8
MAX_BATCHES = 3  # rows stay <= MAX_BATCH_SIZE * MAX_BATCHES + MAX_BATCH_SIZE - 1

label_columns = st.sampled_from(("label", "labels", None))  # the hub's name, the model's name, unlabeled
num_labels = st.sampled_from(sorted(TASK_FOR_NUM_LABELS))  # 1 = regression
accumulation_steps = st.none() | st.integers(1, 3)
include_for_metrics = st.sampled_from(((), ("inputs",), ("loss",), ("inputs", "loss")))
metric_key_prefixes = st.sampled_from((None, "test", "eval", "val", "held_out"))  # None: the Trainer's default


def _rows_for(draw: st.DrawFn, kind: str, batch: int) -> int:
    """Rows in size class `kind` for a batch size (>= 2 unless `kind` is "one" or "multiple")."""
    if kind == "one":
        return 1
    if kind == "below_batch":
        return draw(st.integers(1, batch - 1))
    full = draw(st.integers(1, MAX_BATCHES))
    return full * batch + (0 if kind == "multiple" else draw(st.integers(1, batch - 1)))


@st.composite
def sized_batch(draw: st.DrawFn) -> tuple[int, int]:
    """(eval batch size, rows) with the rows in one of SIZE_CLASSES relative to the batch size."""
    kind = draw(st.sampled_from(SIZE_CLASSES))
    batch = draw(st.integers(1 if kind in ("one", "multiple") else 2, MAX_BATCH_SIZE))
    return batch, _rows_for(draw, kind, batch)


@st.composite
def data_specs(draw: st.DrawFn, rows: int, label_column: str | None | st.SearchStrategy = label_columns) -> DataSpec:
    """`rows` examples whose lengths vary within [min_length, max_length], so batches pad to different widths."""
    low = draw(st.integers(1, 8))
    high = draw(st.integers(low, 24))
    column = draw(label_column) if isinstance(label_column, st.SearchStrategy) else label_column
    return DataSpec(rows=rows, seed=draw(st.integers(0, 2**16)), min_length=low, max_length=high,
                    label_column=column)


@st.composite
def predict_cases(draw: st.DrawFn, model: str | st.SearchStrategy[str],
                  training: st.SearchStrategy[str] = st.just("none")) -> Case:
    """One dataset through predict() (three times: twice alike, once with another batch size) and evaluate()."""
    model = draw(model) if isinstance(model, st.SearchStrategy) else model
    batch, rows = draw(sized_batch())
    batch_eval = draw(st.booleans())
    return Case(model=model, num_labels=draw(num_labels), data=(draw(data_specs(rows)),),
                eval_dict=draw(st.booleans()), eval_batch_size=batch,
                eval_accumulation_steps=draw(accumulation_steps), compute_metrics=draw(st.booleans()),
                metric_key_prefix=draw(metric_key_prefixes), batch_eval_metrics=batch_eval,
                include_for_metrics=draw(include_for_metrics),
                alt_batch_size=draw(st.integers(1, MAX_BATCH_SIZE * MAX_BATCHES)),
                alt_accumulation_steps=draw(accumulation_steps), training=draw(training))


def trained_cases(models: tuple[str, ...] = TINY_MODEL_NAMES) -> st.SearchStrategy[Case]:
    """predict_cases after one train() step, with or without an evaluate() before it."""
    return predict_cases(st.sampled_from(models), training=st.sampled_from(("before", "between")))


@st.composite
def evaluate_dict_cases(draw: st.DrawFn, models: tuple[str, ...] = TINY_MODEL_NAMES) -> Case:
    """Two or three eval datasets as a dict (each labeled or not, each its own size class) through evaluate()."""
    batch = draw(st.integers(2, MAX_BATCH_SIZE))
    count = draw(st.integers(2, len(EVAL_SET_NAMES)))
    sizes = [_rows_for(draw, kind, batch)
             for kind in draw(st.lists(st.sampled_from(SIZE_CLASSES), min_size=count, max_size=count))]
    return Case(model=draw(st.sampled_from(models)), num_labels=draw(num_labels),
                data=tuple(draw(data_specs(n)) for n in sizes), eval_dict=True, eval_batch_size=batch,
                eval_accumulation_steps=draw(accumulation_steps), compute_metrics=draw(st.booleans()),
                metric_key_prefix=draw(metric_key_prefixes), batch_eval_metrics=draw(st.booleans()),
                include_for_metrics=draw(include_for_metrics), alt_batch_size=draw(st.integers(1, MAX_BATCH_SIZE)))
