"""The model FLOP count (harness.machine.flops): a hand count, torch's FlopCounterMode on real tiny models, MFU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModelForSequenceClassification

from harness.machine import flops
from harness.core.models import TINY_FAMILIES

# FlopCounterMode counts matrix products as the formula does; the formula matches it exactly on these models. The
# tolerance leaves room for a kernel a later torch counts differently, far below a term left out (>= 1 %).
TOLERANCE = 1e-3
TINY = SimpleNamespace(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_labels=2)


def test_hand_count_of_a_tiny_bert() -> None:
    shape = flops.EncoderShape.from_config(TINY)
    # one layer, n = 10: projections 2*10*(4*64^2 + 2*64*128) = 655_360; attention 4*10^2*64 = 25_600
    # two layers 1_361_920; head 2*64^2 + 2*64*2 = 8_448 (pooler, classifier)
    assert flops.forward_flops(shape, 10) == 1_370_368
    # n = 4: 2*4*32_768 + 4*16*64 = 266_240 per layer -> 532_480 + 8_448
    assert flops.forward_flops(shape, 4) == 540_928
    assert flops.training_flops(shape, [10, 4], batches=1) == 3 * (1_370_368 + 540_928) == 5_733_888
    assert flops.batch_flops(shape) == 0


def test_attention_is_counted_over_each_sequence_not_the_padded_batch() -> None:
    shape = flops.EncoderShape.from_config(TINY)
    # padding [4] to [10] would add 6 tokens of work; the count is that of the tokens the model actually has
    both = flops.forward_flops(shape, 10) + flops.forward_flops(shape, 4)
    assert flops.dataset_forward_flops(shape, [10, 4], 1) == both
    assert flops.dataset_forward_flops(shape, [10, 4], 1) < 2 * flops.forward_flops(shape, 10)


def _tiny(family: str, labels: int) -> torch.nn.Module:
    values = dict(TINY_FAMILIES[family])
    config = AutoConfig.for_model(values.pop("model_type"), **values, num_labels=labels)
    torch.manual_seed(0)
    # eager attention: matrix products FlopCounterMode sees (its CPU SDPA kernel is not in torch's FLOP table)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")


def _counted(model: torch.nn.Module, length: int, batch: int = 2) -> tuple[int, int]:
    """FlopCounterMode's forward and backward FLOPs of one unpadded batch."""
    ids = torch.randint(1000, 2000, (batch, length), generator=torch.Generator().manual_seed(length))
    with FlopCounterMode(display=False) as forward:
        loss = model(input_ids=ids, labels=torch.zeros(batch, dtype=torch.long)).loss
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    return forward.get_total_flops(), backward.get_total_flops()


@pytest.mark.parametrize("family", ["bert", "distilbert", "electra", "deberta-v2"])
def test_formula_matches_flop_counter_on_tiny_models(family: str) -> None:
    """BERT (MiniLM's architecture), DistilBERT's names, ELECTRA's factorised embeddings, DeBERTa-v2's relative
    attention: two batches of different lengths, each counted by torch."""
    model = _tiny(family, labels=3)
    shape = flops.EncoderShape.from_config(model.config)
    counted = [_counted(model, length) for length in (7, 33)]
    forward = sum(f for f, _ in counted)
    assert flops.dataset_forward_flops(shape, [7, 7, 33, 33], batches=2) == pytest.approx(forward, rel=TOLERANCE)
    # the backward pass costs twice the forward: training = 3 x forward
    assert sum(b for _, b in counted) == pytest.approx(2 * forward, rel=TOLERANCE)
    assert flops.training_flops(shape, [7, 7, 33, 33], 2) == pytest.approx(sum(map(sum, counted)), rel=TOLERANCE)


def test_relative_attention_and_factorised_embeddings_are_read_from_the_config() -> None:
    deberta = flops.EncoderShape.from_config(_tiny("deberta-v2", 2).config)
    assert (deberta.relative_span, deberta.relative_terms, deberta.relative_tables) == (64, 2, 2)
    assert flops.batch_flops(deberta) == 2 * 2 * 4 * 64 * 64 ** 2
    assert flops.EncoderShape.from_config(_tiny("albert", 2).config).embedding == 32


def test_summary_counts_the_steps_run_and_divides_by_their_seconds() -> None:
    peak = {"flops_per_second": 1e9, "note": None}
    whole = flops.summary(TINY, [10, 4], batch_size=2, epochs=2.0, steps_done=2, steps_planned=2, seconds=0.01,
                          peak=peak, dtype="fp32")
    assert whole["train"] == 2 * 5_733_888 and whole["per_epoch"] == 5_733_888
    assert whole["per_second"] == pytest.approx(2 * 5_733_888 / 0.01)
    assert whole["mfu"] == pytest.approx(whole["per_second"] / 1e9)
    resumed = flops.summary(TINY, [10, 4], batch_size=2, epochs=2.0, steps_done=1, steps_planned=2, seconds=0.01,
                            peak=peak, dtype="fp32")
    assert resumed["train"] == 5_733_888  # half the steps ran in this process
    two_ranks = flops.summary(TINY, [10, 4], batch_size=1, epochs=2.0, steps_done=2, steps_planned=2, seconds=0.01,
                              peak=peak, dtype="fp32", devices=2)
    assert two_ranks["mfu"] == pytest.approx(whole["mfu"] / 2)  # two devices' peak


def test_summary_of_an_unreadable_config_says_why_instead_of_failing() -> None:
    entry = flops.summary(SimpleNamespace(num_hidden_layers=2, hidden_size=8, num_labels=2), [3], batch_size=1,
                          epochs=1.0, steps_done=1, steps_planned=1, seconds=1.0, peak={}, dtype="fp32")
    assert entry["mfu"] is None and "intermediate_size" in entry["note"]


def test_utilisation_is_none_without_a_peak() -> None:
    assert flops.utilisation(5e9, 1e10) == 0.5
    assert flops.utilisation(5e9, None) is None and flops.utilisation(None, 1e10) is None


@pytest.mark.parametrize(("precision", "parameters", "tf32", "expected"), [
    ("fp32", "float32", False, "fp32"), ("fp32", "float32", True, "tf32"), ("bf16", "float32", True, "bf16"),
    ("fp16", "float32", False, "fp16"), ("fp32", "bfloat16", True, "bf16"), ("fp32", "torch.float16", False, "fp16"),
    ("fp32", None, False, "fp32"),
])
def test_compute_dtype(precision: str, parameters: str | None, tf32: bool, expected: str) -> None:
    assert flops.compute_dtype(precision, parameters, tf32) == expected
