"""Tokenization cache: a second identical request is a hit; anything that changes features is a miss."""

from pathlib import Path

import pytest

from harness.core import models
from harness.data.loading import load_task
from harness.data.featurize import check_max_length, featurize
from harness.errors import HarnessError
from harness.data.tasks import get_task


def _tokenizer(family: str = "bert"):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models.tiny_checkpoint(family))


def test_second_request_hits_the_cache_with_identical_features(tmp_path: Path) -> None:
    data = load_task(get_task("syn-mrpc"), max_train_samples=64, max_eval_samples=32)
    first = featurize(data, _tokenizer(), max_length=32, cache_dir=tmp_path)
    second = featurize(data, _tokenizer(), max_length=32, cache_dir=tmp_path)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.splits["train"]["input_ids"] == second.splits["train"]["input_ids"]
    assert first.tokens == second.tokens and first.tokens["train"] > 64


def test_features_drop_text_and_keep_label_and_idx(tmp_path: Path) -> None:
    data = load_task(get_task("syn-sst2"), max_train_samples=16, max_eval_samples=16)
    features = featurize(data, _tokenizer(), max_length=8, cache_dir=tmp_path)
    train = features.splits["train"]
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids", "label", "idx"}
    assert max(len(ids) for ids in train["input_ids"]) <= 8  # truncated, not padded
    assert train["label"] == data.splits["train"]["label"]


def test_key_changes_with_length_subset_and_data(tmp_path: Path) -> None:
    task = get_task("syn-mrpc")
    small = load_task(task, max_train_samples=64, max_eval_samples=32)
    keys = {
        featurize(small, _tokenizer(), max_length=32, cache_dir=tmp_path).cache_key,
        featurize(small, _tokenizer(), max_length=16, cache_dir=tmp_path).cache_key,
        featurize(load_task(task, max_train_samples=65, max_eval_samples=32), _tokenizer(), max_length=32,
                  cache_dir=tmp_path).cache_key,
        featurize(load_task(task, max_train_samples=64, max_eval_samples=32, subset_seed=1), _tokenizer(),
                  max_length=32, cache_dir=tmp_path).cache_key,
    }
    assert len(keys) == 4


def test_the_shortest_max_length_is_honoured(tmp_path: Path) -> None:
    data = load_task(get_task("syn-mrpc"), max_train_samples=16, max_eval_samples=16)
    features = featurize(data, _tokenizer(), max_length=5, cache_dir=tmp_path)
    assert {len(ids) for ids in features.splits["train"]["input_ids"]} == {5}  # [CLS] a [SEP] b [SEP]


def test_a_max_length_the_tokenizer_would_ignore_is_refused(tmp_path: Path) -> None:
    """Below its special tokens plus one per text a tokenizer skips truncation silently; refuse it instead."""
    data = load_task(get_task("syn-sst2"), max_train_samples=16, max_eval_samples=16)
    with pytest.raises(HarnessError, match=r"max_length 2 is too short for syn-sst2 .* Allowed: 3 up to"):
        featurize(data, _tokenizer(), max_length=2, cache_dir=tmp_path)


class _FourSpecials:
    """A RoBERTa-style tokenizer as far as length goes: <s> a </s></s> b </s>."""

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 4 if pair else 2


def test_the_shortest_length_follows_the_tokenizer() -> None:
    check_max_length(_FourSpecials(), get_task("mrpc"), 6)
    with pytest.raises(HarnessError, match="4 special tokens plus one per text need 6"):
        check_max_length(_FourSpecials(), get_task("mrpc"), 5)
