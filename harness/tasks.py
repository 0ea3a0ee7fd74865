"""Declarative task registry: the nine GLUE tasks and the built-in tasks the harness generates itself.

A `TaskSpec` says everything a loader, metric or verdict needs to know about a task and nothing about where
its rows come from (see `data.py`). Bump `version` whenever a change would make old results incomparable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.errors import UnknownNameError

GLUE_HUB_PATH = "nyu-mll/glue"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    benchmark: str  # "glue" or "builtin"
    text_keys: tuple[str, ...]  # one key (single sentence) or two (sentence pair), hub column names
    label_names: tuple[str, ...]  # empty for regression; index = integer label, as on the hub
    metrics: tuple[str, ...]  # names understood by harness.metrics
    primary_metric: str
    higher_is_better: bool = True
    is_regression: bool = False
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    hub_path: str | None = None
    hub_config: str | None = None
    glue_dir_name: str | None = None  # folder under GLUE_DIR in the original TSV layout
    builtin_sizes: Mapping[str, int] = field(default_factory=dict)  # rows per split, built-in tasks only
    description: str = ""
    version: int = 1

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_keys) == 2

    @property
    def splits(self) -> tuple[str, ...]:
        return (self.train_split, *self.eval_splits, *self.test_splits)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


def _glue(name: str, tsv: str, text_keys: tuple[str, ...], labels: tuple[str, ...], metrics: tuple[str, ...],
          primary: str, description: str, **overrides: object) -> TaskSpec:
    return TaskSpec(name=name, benchmark="glue", text_keys=text_keys, label_names=labels, metrics=metrics,
                    primary_metric=primary, hub_path=GLUE_HUB_PATH, hub_config=name, glue_dir_name=tsv,
                    description=description, **overrides)  # type: ignore[arg-type]


_PAIR = ("sentence1", "sentence2")
_ENTAIL = ("entailment", "not_entailment")

_GLUE_TASKS = (
    _glue("cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",),
          "matthews_correlation", "Corpus of Linguistic Acceptability: is the sentence grammatical?"),
    _glue("sst2", "SST-2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy",
          "Stanford Sentiment Treebank: sentence polarity."),
    _glue("mrpc", "MRPC", _PAIR, ("not_equivalent", "equivalent"), ("accuracy", "f1", "combined_score"),
          "accuracy", "Microsoft Research Paraphrase Corpus: are the two sentences paraphrases?"),
    _glue("stsb", "STS-B", _PAIR, (), ("pearson", "spearmanr", "combined_score"), "pearson",
          "Semantic Textual Similarity Benchmark: similarity score 0-5.", is_regression=True),
    _glue("qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"),
          ("accuracy", "f1", "combined_score"), "accuracy", "Quora Question Pairs: duplicate questions?"),
    _glue("mnli", "MNLI", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
          "accuracy", "Multi-Genre NLI, evaluated on matched and mismatched genres.",
          eval_splits=("validation_matched", "validation_mismatched"),
          test_splits=("test_matched", "test_mismatched")),
    _glue("qnli", "QNLI", ("question", "sentence"), _ENTAIL, ("accuracy",), "accuracy",
          "Question NLI: does the sentence answer the question?"),
    _glue("rte", "RTE", _PAIR, _ENTAIL, ("accuracy",), "accuracy", "Recognizing Textual Entailment."),
    _glue("wnli", "WNLI", _PAIR, ("not_entailment", "entailment"), ("accuracy",), "accuracy",
          "Winograd NLI: pronoun resolution as entailment."),
)

# Variants override only what differs.
_MNLI = _GLUE_TASKS[5]
_VARIANTS = (
    dataclasses.replace(_MNLI, name="mnli_matched", eval_splits=("validation_matched",),
                        test_splits=("test_matched",), description="MNLI, matched-genre evaluation only."),
    dataclasses.replace(_MNLI, name="mnli_mismatched", eval_splits=("validation_mismatched",),
                        test_splits=("test_mismatched",), description="MNLI, mismatched-genre evaluation only."),
)

_BUILTIN_SIZES = MappingProxyType({"train": 4096, "validation": 512, "test": 256})

_BUILTIN_TASKS = (
    TaskSpec(name="syn-mrpc", benchmark="builtin", text_keys=_PAIR, label_names=("not_equivalent", "equivalent"),
             metrics=("accuracy", "f1", "combined_score"), primary_metric="accuracy", builtin_sizes=_BUILTIN_SIZES,
             description="Generated paraphrase pairs: does sentence2 say the same as sentence1?"),
    TaskSpec(name="syn-sst2", benchmark="builtin", text_keys=("sentence",), label_names=("negative", "positive"),
             metrics=("accuracy",), primary_metric="accuracy", builtin_sizes=_BUILTIN_SIZES,
             description="Generated reviews with negation: is the overall sentiment positive?"),
    TaskSpec(name="syn-stsb", benchmark="builtin", text_keys=_PAIR, label_names=(), is_regression=True,
             metrics=("pearson", "spearmanr", "combined_score"), primary_metric="pearson",
             builtin_sizes=_BUILTIN_SIZES,
             description="Generated sentence pairs scored 0-5 by how many content words they share."),
)

TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {t.name: t for t in (*_GLUE_TASKS, *_VARIANTS, *_BUILTIN_TASKS)})
GLUE_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in _GLUE_TASKS)
BUILTIN_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in _BUILTIN_TASKS)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name (case-insensitive; 'sst-2' and 'sts-b' spellings accepted)."""
    key = name.strip().lower()
    key = {"sst-2": "sst2", "sts-b": "stsb"}.get(key, key)
    try:
        return TASKS[key]
    except KeyError:
        raise UnknownNameError("task", name, TASKS) from None
