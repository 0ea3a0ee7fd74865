"""What one matrix cell runs: RunConfig, the hyperparameter presets, validation. Light: no torch import."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.core import models
from harness.core.tasks import TaskSpec, get_task
from harness.errors import HarnessError, UnknownNameError

# Presets fix every hyperparameter a cell depends on; explicit RunConfig fields override them.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    # The course walkthrough: TrainingArguments defaults, tokenizer truncation at the model's limit.
    "seed": MappingProxyType({"epochs": 3.0, "train_batch_size": 8, "eval_batch_size": 8, "learning_rate": 5e-5,
                              "max_length": None, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # transformers' examples/run_glue.py as documented for GLUE.
    "run_glue": MappingProxyType({"epochs": 3.0, "train_batch_size": 32, "eval_batch_size": 8, "learning_rate": 2e-5,
                                  "max_length": 128, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # Small and fast: seconds per cell on a 2-core CPU; learns the built-in tasks well above chance.
    "smoke": MappingProxyType({"epochs": 2.0, "train_batch_size": 32, "eval_batch_size": 64, "learning_rate": 1e-4,
                               "max_length": 64, "weight_decay": 0.01, "warmup_ratio": 0.1,
                               "max_train_samples": 512, "max_eval_samples": 512}),
})
# Randomly initialised tiny models learn from scratch: a larger step and more examples than a pretrained
# checkpoint needs (they run ~30x faster per example, so a cell still takes seconds).
TINY_MODEL_OVERRIDES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "smoke": MappingProxyType({"learning_rate": 1e-3, "epochs": 6.0, "max_train_samples": 4096}),
})
PRECISIONS = ("fp32", "fp16", "bf16")
MAX_SEED = 2**32 - 1  # numpy's and the Trainer's seeding accept 0 .. 2**32 - 1
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunConfig:
    model: str
    task: str
    seed: int = 0
    preset: str = "smoke"
    epochs: float | None = None
    train_batch_size: int | None = None
    eval_batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_ratio: float | None = None
    max_length: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    data_seed: int = 0  # picks the subsets; independent of the training seed
    evals_per_epoch: int = 1  # >1: evaluate every 1/N epoch (finer time-to-quality curves)
    precision: str = "fp32"
    device: str = "auto"
    source: str | None = None  # "hub" | "local" | "builtin"; None: GLUE_DIR if set, else hub
    glue_dir: str | None = None

    @property
    def cell_id(self) -> str:
        """"<task>-<model>-s<seed>", e.g. "mrpc-minilm-s0"; a task file or model folder contributes its name."""
        return f"{self.group}-s{self.seed}"

    @property
    def group(self) -> str:
        """The cell without its seed, "<task>-<model>": what throughput and seed spread are judged over."""
        model = Path(self.model).name if "/" in self.model else self.model
        return f"{get_task(self.task).name}-{model}"


def make_config(model: str, task: str, *, seed: int = 0, preset: str = "smoke", **overrides: Any) -> RunConfig:
    """A RunConfig with the preset's values filled in; overrides that are None keep the preset's value."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, PRESETS)
    tiny = models.get_model(model).kind == "tiny"
    values = {**PRESETS[preset], **(TINY_MODEL_OVERRIDES.get(preset, {}) if tiny else {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    config = RunConfig(model=model, task=task, seed=seed, preset=preset, **values)
    validate(config)
    return config


# Float fields: (name, what is allowed, test). Non-finite values never are (inf epochs would never end).
_NUMBERS: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
    ("epochs", "positive and finite", lambda v: v > 0),
    ("learning_rate", "positive and finite", lambda v: v > 0),
    ("weight_decay", "finite and >= 0", lambda v: v >= 0),
    ("warmup_ratio", "from 0 up to (not including) 1", lambda v: 0 <= v < 1),
)


def validate(config: RunConfig) -> None:
    """Every value of a config on its own (no file is read): names, ranges, finiteness, the shortest max_length."""
    if config.precision not in PRECISIONS:
        raise HarnessError(f"Unknown precision {config.precision!r}; allowed: {', '.join(PRECISIONS)}.")
    if config.device not in DEVICES:
        raise HarnessError(f"Unknown device {config.device!r}; allowed: {', '.join(DEVICES)}.")
    for name in ("seed", "data_seed"):
        value = getattr(config, name)
        if not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise HarnessError(f"{name} must be an integer from 0 to {MAX_SEED}, got {value!r}.")
    for name in ("train_batch_size", "eval_batch_size", "max_length", "max_train_samples", "max_eval_samples",
                 "evals_per_epoch"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise HarnessError(f"{name} must be a positive integer, got {value!r}.")
    for name, allowed, fits in _NUMBERS:
        value = getattr(config, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and fits(value)):
            raise HarnessError(f"{name} must be {allowed}, got {value!r}.")
    task = get_task(config.task)
    shortest = shortest_length(task.is_pair)
    if config.max_length is not None and config.max_length < shortest:
        raise HarnessError(f"max_length {config.max_length} is too short for {task.name}: {_layout(task.is_pair)} "
                           f"needs at least {shortest} tokens. Allowed: {shortest} up to the model's position limit "
                           "(512 for BERT-sized models), or omit it for the preset's.")


def shortest_length(pair: bool) -> int:
    """The smallest max_length that keeps one token of every text: the fewest special tokens an encoder adds
    ([CLS] x [SEP]; [CLS] a [SEP] b [SEP]) plus one token per text. Tokenizers with more specials need more
    (featurize checks the exact figure)."""
    return 5 if pair else 3


def _layout(pair: bool) -> str:
    return "a sentence pair ([CLS] a [SEP] b [SEP])" if pair else "a single sentence ([CLS] text [SEP])"


GLUE_LAYOUT = "DIR/<TASK>/{train,dev}.tsv as in the original GLUE download, e.g. DIR/MRPC/train.tsv, DIR/SST-2/dev.tsv"


def check_glue_dir(path: str | os.PathLike, task: TaskSpec | None = None) -> Path:
    """The GLUE folder exists, is a folder and (given a task) holds that task's folder; returns it expanded."""
    root = Path(path).expanduser()
    where = f"GLUE data folder {path} (--glue-dir / GLUE_DIR)"
    if root.is_file():
        raise HarnessError(f"{where} is a file, not a folder. Pass the folder that holds the task folders: "
                           f"{GLUE_LAYOUT}.")
    if not root.is_dir():
        raise HarnessError(f"{where} does not exist. Expected a folder laid out as {GLUE_LAYOUT}; fix the path, or "
                           "unset it to read the hub.")
    if task is not None and task.glue_dir_name and not (root / task.glue_dir_name).is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        shown = ", ".join(present[:10]) + (f" and {len(present) - 10} more" if len(present) > 10 else "")
        raise HarnessError(f"{where} has no {task.glue_dir_name}/ folder for task {task.name} (folders present: "
                           f"{shown or 'none'}). Expected {GLUE_LAYOUT}.")
    return root


def check_inputs(config: RunConfig) -> None:
    """Everything a cell reads, checked before it trains: values, the checkpoint's config.json (which must exist and
    whose position limit bounds max_length) and, for GLUE tasks read from TSVs, the data folder."""
    validate(config)
    task = get_task(config.task)
    spec = models.get_model(config.model)
    limit = models.position_limit(spec)
    if config.max_length is not None and limit is not None and config.max_length > limit:
        raise HarnessError(f"max_length {config.max_length} exceeds what {config.model} can encode: its config.json "
                           f"allows {limit} token positions. Allowed: {shortest_length(task.is_pair)} to {limit}.")
    if task.benchmark == "glue":
        from harness.core.data import resolve_source  # lazily: datasets is heavy, and only GLUE tasks need it

        source, directory = resolve_source(task, config.source, config.glue_dir)
        if source == "local" and directory is not None:
            check_glue_dir(directory, task)
