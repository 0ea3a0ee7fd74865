"""What a task is (`TaskSpec`) and the built-in ones: the nine GLUE tasks and the generated tasks.

A `TaskSpec` says everything a loader, metric or verdict needs to know about a task, including which columns of
its source files hold the text and the label (`data.py` does the reading). Bump `version` whenever a change would
make old results incomparable. User tasks come from files (taskfile.py); tasks.py looks either kind up by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.base.registry import Registry

GLUE_HUB_PATH = "nyu-mll/glue"
TASK_FILE_SUFFIXES = (".toml", ".yaml", ".yml")
ALIASES: Mapping[str, str] = MappingProxyType({"sst-2": "sst2", "sts-b": "stsb"})  # GLUE folder spellings


@dataclass(frozen=True)
class TsvLayout:
    """Where a task's files in the original GLUE layout keep text and label. Columns are found by header name."""

    folder: str  # GLUE_DIR/<folder>/{train,dev,...}.tsv
    text: tuple[str, ...]  # file columns, in the order of TaskSpec.text_keys
    label: str  # label column of labeled files (test files have none)
    headerless: tuple[str, ...] | None = None  # column names by position, for labeled files without a header


@dataclass(frozen=True)
class UserSource:
    """Where a user-declared task's rows live (data files or a hub dataset) and which columns hold what."""

    task_file: str  # absolute path of the TOML/YAML file that declared the task
    text: tuple[str, ...]  # source columns, in the order of TaskSpec.text_keys
    label: str  # source label column, renamed to `label`
    files: Mapping[str, str] = field(default_factory=dict)  # split -> absolute data file path; empty: hub
    hub_splits: Mapping[str, str] = field(default_factory=dict)  # split -> the hub dataset's split name


@dataclass(frozen=True)
class TaskSpec:
    name: str
    benchmark: str  # "glue", "builtin" or "user"
    text_keys: tuple[str, ...]  # one key (single sentence) or two (sentence pair), hub column names
    label_names: tuple[str, ...]  # empty for regression; index = integer label, as on the hub
    metrics: tuple[str, ...]  # names understood by harness.data.metrics
    primary_metric: str
    higher_is_better: bool = True
    is_regression: bool = False
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    hub_path: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None  # None: the hub's default branch
    tsv: TsvLayout | None = None  # GLUE tasks: their files in the original TSV layout
    user: UserSource | None = None  # user tasks: their files or hub dataset, from the task file
    # rows per split: what a built-in task generates, GLUE's published sizes (train and evaluation splits); empty for
    # a user task, whose size is only known once read
    sizes: Mapping[str, int] = field(default_factory=dict)
    description: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        needed = (self.train_split, *self.eval_splits) + (self.test_splits if self.benchmark == "builtin" else ())
        if self.benchmark != "user" and not set(needed) <= set(self.sizes):
            raise ValueError(f"task {self.name}: sizes must give the rows of every split of {needed}, got "
                             f"{dict(self.sizes)}")

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

    @property
    def glue_dir_name(self) -> str | None:
        """Folder under GLUE_DIR in the original TSV layout (GLUE tasks only)."""
        return self.tsv.folder if self.tsv else None


def _glue(name: str, tsv: TsvLayout, text_keys: tuple[str, ...], labels: tuple[str, ...], metrics: tuple[str, ...],
          primary: str, description: str, rows: tuple[int, int] | None = None, **overrides: object) -> TaskSpec:
    """`rows`: the published train and validation sizes (a task with several validation splits gives `sizes`)."""
    sizes = overrides.pop("sizes", None) or ({"train": rows[0], "validation": rows[1]} if rows else {})
    return TaskSpec(name=name, benchmark="glue", text_keys=text_keys, label_names=labels, metrics=metrics,
                    primary_metric=primary, hub_path=GLUE_HUB_PATH, hub_config=name, tsv=tsv,
                    description=description, sizes=MappingProxyType(dict(sizes)), **overrides)  # type: ignore


_PAIR = ("sentence1", "sentence2")
_ENTAIL = ("entailment", "not_entailment")
_COLA_COLUMNS = ("source", "label", "label_mark", "sentence")  # its labeled files have no header line

_GLUE_TASKS = (
    _glue("cola", TsvLayout("CoLA", ("sentence",), "label", headerless=_COLA_COLUMNS), ("sentence",),
          ("unacceptable", "acceptable"), ("matthews_correlation",), "matthews_correlation",
          "Corpus of Linguistic Acceptability: is the sentence grammatical?", (8551, 1043)),
    _glue("sst2", TsvLayout("SST-2", ("sentence",), "label"), ("sentence",), ("negative", "positive"),
          ("accuracy",), "accuracy", "Stanford Sentiment Treebank: sentence polarity.", (67349, 872)),
    _glue("mrpc", TsvLayout("MRPC", ("#1 String", "#2 String"), "Quality"), _PAIR,
          ("not_equivalent", "equivalent"), ("accuracy", "f1", "combined_score"), "accuracy",
          "Microsoft Research Paraphrase Corpus: are the two sentences paraphrases?", (3668, 408)),
    _glue("stsb", TsvLayout("STS-B", _PAIR, "score"), _PAIR, (), ("pearson", "spearmanr", "combined_score"),
          "pearson", "Semantic Textual Similarity Benchmark: similarity score 0-5.", (5749, 1500), is_regression=True),
    _glue("qqp", TsvLayout("QQP", ("question1", "question2"), "is_duplicate"), ("question1", "question2"),
          ("not_duplicate", "duplicate"), ("accuracy", "f1", "combined_score"), "accuracy",
          "Quora Question Pairs: duplicate questions?", (363846, 40430)),
    _glue("mnli", TsvLayout("MNLI", _PAIR, "gold_label"), ("premise", "hypothesis"),
          ("entailment", "neutral", "contradiction"), ("accuracy",), "accuracy",
          "Multi-Genre NLI, evaluated on matched and mismatched genres.",
          sizes={"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832}, eval_splits=("validation_matched", "validation_mismatched"),
          test_splits=("test_matched", "test_mismatched")),
    _glue("qnli", TsvLayout("QNLI", ("question", "sentence"), "label"), ("question", "sentence"), _ENTAIL,
          ("accuracy",), "accuracy", "Question NLI: does the sentence answer the question?", (104743, 5463)),
    _glue("rte", TsvLayout("RTE", _PAIR, "label"), _PAIR, _ENTAIL, ("accuracy",), "accuracy",
          "Recognizing Textual Entailment.", (2490, 277)),
    _glue("wnli", TsvLayout("WNLI", _PAIR, "label"), _PAIR, ("not_entailment", "entailment"), ("accuracy",),
          "accuracy", "Winograd NLI: pronoun resolution as entailment.", (635, 71)),
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
             metrics=("accuracy", "f1", "combined_score"), primary_metric="accuracy", sizes=_BUILTIN_SIZES,
             description="Generated paraphrase pairs: does sentence2 say the same as sentence1?"),
    TaskSpec(name="syn-sst2", benchmark="builtin", text_keys=("sentence",), label_names=("negative", "positive"),
             metrics=("accuracy",), primary_metric="accuracy", sizes=_BUILTIN_SIZES,
             description="Generated reviews with negation: is the overall sentiment positive?"),
    TaskSpec(name="syn-stsb", benchmark="builtin", text_keys=_PAIR, label_names=(), is_regression=True,
             metrics=("pearson", "spearmanr", "combined_score"), primary_metric="pearson",
             sizes=_BUILTIN_SIZES,
             description="Generated sentence pairs scored 0-5 by how many content words they share."),
)

TASKS: Registry[TaskSpec] = Registry("task", (*_GLUE_TASKS, *_VARIANTS, *_BUILTIN_TASKS))
GLUE_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in _GLUE_TASKS)
BUILTIN_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in _BUILTIN_TASKS)
