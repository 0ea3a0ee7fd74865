"""Tokenization with an on-disk cache, so a second run of the same cell does not re-tokenize.

The cache key covers everything that determines the features: the data fingerprint (source, file hashes, subset),
the tokenizer's full serialized state, the truncation length and this module's version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from harness.data.loading import TaskData
from harness.data.tasks import TaskSpec
from harness.errors import HarnessError

FEATURIZE_VERSION = 1


@dataclass(frozen=True)
class Features:
    splits: datasets.DatasetDict  # input_ids, attention_mask (+ token_type_ids), label, idx
    tokens: dict[str, int]  # non-padding tokens per split
    cache_hit: bool
    cache_key: str


def tokenizer_identity(tokenizer: Any) -> str:
    """A hash of the tokenizer's complete state (vocabulary, normalizer, special tokens, limits)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    extra = json.dumps([type(tokenizer).__name__, tokenizer.model_max_length, tokenizer.padding_side,
                        tokenizer.all_special_tokens], default=str)
    return hashlib.sha256((state + extra).encode()).hexdigest()[:16]


def cache_key(data: TaskData, tokenizer: Any, max_length: int | None) -> str:
    parts = [FEATURIZE_VERSION, data.fingerprint, tokenizer_identity(tokenizer), max_length, data.spec.text_keys]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]


def featurize(data: TaskData, tokenizer: Any, *, max_length: int | None, cache_dir: Path) -> Features:
    """Tokenize every split (no padding: DataCollatorWithPadding pads per batch), through the cache."""
    check_max_length(tokenizer, data.spec, max_length)
    key = cache_key(data, tokenizer, max_length)
    target = cache_dir / "features" / f"{data.spec.name}-{key}"
    hit = (target / "dataset_dict.json").exists()
    with _quiet_progress():
        if hit:
            splits = datasets.load_from_disk(str(target))
        else:
            splits = _tokenize(data, tokenizer, max_length, key)
            _save_atomically(splits, target)
    tokens = {name: int(sum(len(ids) for ids in split["input_ids"])) for name, split in splits.items()}
    return Features(splits, tokens, hit, key)


def shortest_length(tokenizer: Any, spec: TaskSpec) -> int:
    """The smallest max_length that keeps one token of every text: this tokenizer's special tokens plus one per text."""
    return tokenizer.num_special_tokens_to_add(pair=spec.is_pair) + len(spec.text_keys)


def check_max_length(tokenizer: Any, spec: TaskSpec, max_length: int | None) -> None:
    """Refuse a max_length the tokenizer cannot honour: below its special tokens plus one per text, tokenizers
    skip truncation altogether (and the features would not match the recorded config)."""
    shortest = shortest_length(tokenizer, spec)
    if max_length is not None and max_length < shortest:
        raise HarnessError(f"max_length {max_length} is too short for {spec.name} with this tokenizer: "
                           f"{tokenizer.num_special_tokens_to_add(pair=spec.is_pair)} special tokens plus one per "
                           f"text need {shortest}. Allowed: {shortest} up to the model's position limit.")


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _tokenize(data: TaskData, tokenizer: Any, max_length: int | None, key: str) -> datasets.DatasetDict:
    text_keys = data.spec.text_keys

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(*(batch[k] for k in text_keys), truncation=True, max_length=max_length)

    return datasets.DatasetDict({
        name: split.map(encode, batched=True, remove_columns=list(text_keys), new_fingerprint=f"{key}-{name}",
                        desc=None)
        for name, split in data.splits.items()})


def _save_atomically(splits: datasets.DatasetDict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        splits.save_to_disk(str(staging))
        try:
            staging.rename(target)
        except OSError:  # a concurrent worker wrote the same features first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
