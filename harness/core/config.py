"""What one matrix cell runs: RunConfig, the hyperparameter presets, validation. Light: no torch import."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.core import models
from harness.data.tasks import TaskSpec, get_task
from harness.errors import HarnessError, UnknownNameError

# Presets fix every hyperparameter a cell depends on; explicit RunConfig fields override them.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    # The course walkthrough: TrainingArguments defaults, tokenizer truncation at the model's limit.
    "seed": MappingProxyType({"epochs": 3.0, "train_batch_size": 8, "eval_batch_size": 8, "learning_rate": 5e-5,
                              "max_length": None, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # transformers' examples/run_glue.py as documented for GLUE.
    "run_glue": MappingProxyType({"epochs": 3.0, "train_batch_size": 32, "eval_batch_size": 8, "learning_rate": 2e-5,
                                  "max_length": 128, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # The nightly GPU tier: run_glue's hyperparameters (the tier gives MRPC and WNLI 5 epochs, as run_glue's
    # published results did); a larger eval batch only makes evaluation faster.
    "nightly": MappingProxyType({"epochs": 3.0, "train_batch_size": 32, "eval_batch_size": 64, "learning_rate": 2e-5,
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
PRECISIONS = ("fp32", "fp16", "bf16")  # bf16: autocast on CPU and GPU; fp16: CUDA only
# Learning-rate schedules every supported transformers version (4.46-5.x) has and that need no extra arguments.
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")
# Optimizers in OptimizerNames from 4.46 to 5.x that need no extra package (bitsandbytes, galore, ...).
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop")
# The dtype from_pretrained loads the checkpoint in; "auto" is the checkpoint's own (5.x's default, #42805).
LOAD_DTYPES = ("auto", "float32", "bfloat16", "float16")
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
    # Trainer settings. The defaults are what every run used before they existed (records without them compare).
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "linear"
    warmup_steps: int | None = None  # an alternative to warmup_ratio (given alone, it sets the ratio to 0)
    # None: TrainingArguments' own default, which varies (4.46: adamw_torch; 4.57, 5.x with torch >= 2.8:
    # adamw_torch_fused); records keep the one used as config["resolved_optim"].
    optim: str | None = None
    max_grad_norm: float = 1.0  # 0 disables gradient clipping
    label_smoothing_factor: float = 0.0
    load_dtype: str = "float32"
    # TrainingArguments.data_seed: seeds the training sampler's shuffling (None: the training seed). Named apart
    # from `data_seed` above, which picks the subsets.
    sampler_seed: int | None = None
    group_by_length: bool = False
    eval_accumulation_steps: int | None = None  # move predictions off the device every N eval batches
    save_steps: int | None = None  # write a Trainer checkpoint every N optimizer steps to checkpoint_dir
    checkpoint_dir: str | None = None
    resume_from_checkpoint: str | None = None  # a checkpoint-N folder written by the Trainer
    trainer_class: str | None = None  # "package.module:ClassName", a transformers.Trainer subclass; None: Trainer
    trajectory_steps: int = 64  # record loss, grad norm and lr of this many first optimizer steps (0: none)
    # A user's own fine-tuning (harness.toml, [tool.harness], --config) is named apart from the tiers' cells that
    # train the same model and task: "yours-syn-mrpc-tiny-bert-s0". None: a tier's or the command line's cell.
    name: str | None = None

    @property
    def cell_id(self) -> str:
        """"<task>-<model>-s<seed>", e.g. "mrpc-minilm-s0"; a task file or model folder contributes its name."""
        return f"{self.group}-s{self.seed}"

    @property
    def group(self) -> str:
        """The cell without its seed, "<task>-<model>" ("-fp16"/"-bf16" added for mixed precision): what throughput
        and seed spread are judged over."""
        model = Path(self.model).name if "/" in self.model else self.model
        cell = f"{get_task(self.task).name}-{model}{precision_suffix(self.precision)}"
        return cell if self.name is None else f"{self.name}-{cell}"


def precision_suffix(precision: str) -> str:
    """What a cell id says about its precision: nothing for fp32 (every id from before precisions), else "-bf16"."""
    return "" if precision == "fp32" else f"-{precision}"


def make_config(model: str, task: str, *, seed: int = 0, preset: str = "smoke", **overrides: Any) -> RunConfig:
    """A RunConfig with the preset's values filled in; overrides that are None keep the preset's value."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, PRESETS)
    tiny = models.get_model(model).kind == "tiny"
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**PRESETS[preset], **(TINY_MODEL_OVERRIDES.get(preset, {}) if tiny else {}), **given}
    if "warmup_steps" in given and "warmup_ratio" not in given:
        values["warmup_ratio"] = 0.0  # warm-up given in steps replaces the preset's ratio
    config = RunConfig(model=model, task=task, seed=seed, preset=preset, **values)
    validate(config)
    return config


# Float fields: (name, what is allowed, test). Non-finite values never are (inf epochs would never end).
_NUMBERS: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
    ("epochs", "positive and finite", lambda v: v > 0),
    ("learning_rate", "positive and finite", lambda v: v > 0),
    ("weight_decay", "finite and >= 0", lambda v: v >= 0),
    ("warmup_ratio", "from 0 up to (not including) 1", lambda v: 0 <= v < 1),
    ("max_grad_norm", "finite and >= 0 (0 disables clipping)", lambda v: v >= 0),
    ("label_smoothing_factor", "from 0 up to (not including) 1", lambda v: 0 <= v < 1),
)
# Named choices: (field, allowed values).
_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("precision", PRECISIONS), ("device", DEVICES), ("lr_scheduler_type", LR_SCHEDULERS), ("optim", OPTIMIZERS),
    ("load_dtype", LOAD_DTYPES))
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_TRAINER_CLASS = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def validate(config: RunConfig) -> None:
    """Every value of a config on its own (no file is read): names, ranges, finiteness, the shortest max_length."""
    for name, allowed in _CHOICES:
        if getattr(config, name) not in allowed and not (name == "optim" and config.optim is None):
            raise HarnessError(f"Unknown {name} {getattr(config, name)!r}; allowed: {', '.join(allowed)}.")
    for name in ("seed", "data_seed", "sampler_seed"):
        value = getattr(config, name)
        if value is None and name == "sampler_seed":  # the only optional one
            continue
        if not _is_int(value) or not 0 <= value <= MAX_SEED:
            raise HarnessError(f"{name} must be an integer from 0 to {MAX_SEED}, got {value!r}.")
    for name in ("train_batch_size", "eval_batch_size", "max_length", "max_train_samples", "max_eval_samples",
                 "evals_per_epoch", "gradient_accumulation_steps", "eval_accumulation_steps", "save_steps"):
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value < 1):
            raise HarnessError(f"{name} must be a positive integer, got {value!r}.")
    for name in ("warmup_steps", "trajectory_steps"):
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value < 0):
            raise HarnessError(f"{name} must be an integer >= 0, got {value!r}.")
    for name, allowed, fits in _NUMBERS:
        value = getattr(config, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and fits(value)):
            raise HarnessError(f"{name} must be {allowed}, got {value!r}.")
    _validate_training(config)
    task = get_task(config.task)
    shortest = shortest_length(task.is_pair)
    if config.max_length is not None and config.max_length < shortest:
        raise HarnessError(f"max_length {config.max_length} is too short for {task.name}: {_layout(task.is_pair)} "
                           f"needs at least {shortest} tokens. Allowed: {shortest} up to the model's position limit "
                           "(512 for BERT-sized models), or omit it for the preset's.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_training(config: RunConfig) -> None:
    """The Trainer settings that depend on each other or on a pattern."""
    if config.warmup_steps is not None and config.warmup_ratio:
        raise HarnessError(f"warmup_ratio {config.warmup_ratio} and warmup_steps {config.warmup_steps} are both set; "
                           "give warm-up one way: a fraction of the training steps or a number of steps.")
    if not isinstance(config.group_by_length, bool):
        raise HarnessError(f"group_by_length must be true or false, got {config.group_by_length!r}.")
    if config.precision == "fp16" and config.load_dtype == "float16":
        raise HarnessError("precision fp16 with load_dtype float16 trains float16 weights, which the Trainer "
                           "refuses (gradient scaling needs float32 master weights); use load_dtype float32 or auto.")
    if (config.save_steps is None) != (config.checkpoint_dir is None):
        raise HarnessError("--save-steps and --checkpoint-dir (save_steps, checkpoint_dir) go together: "
                           "checkpoints are written every save_steps optimizer steps into checkpoint_dir (a scratch "
                           "folder would be deleted with the cell); "
                           f"got save_steps {config.save_steps!r}, checkpoint_dir {config.checkpoint_dir!r}.")
    if config.name is not None and not (isinstance(config.name, str) and _NAME.fullmatch(config.name)):
        raise HarnessError(f"name must be a short word of letters, digits, '_' or '-' (it starts every cell id of "
                           f"your fine-tuning), got {config.name!r}; e.g. yours.")
    if config.trainer_class is not None and not (isinstance(config.trainer_class, str)
                                                 and _TRAINER_CLASS.fullmatch(config.trainer_class)):
        raise HarnessError(f"--trainer-class (trainer_class) must be 'package.module:ClassName' (a transformers.Trainer subclass), "
                           f"got {config.trainer_class!r}; e.g. harness.core.trainers:ExplicitLossTrainer.")


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


def check_checkpoint_folders(config: RunConfig) -> None:
    """The checkpoint to resume from is a Trainer checkpoint folder; the folder to save checkpoints in is not a
    file (it is created if missing)."""
    if config.checkpoint_dir is not None:
        from harness.base.writable import writable_folder

        writable_folder(Path(config.checkpoint_dir).expanduser(), "--checkpoint-dir (checkpoint_dir)")
    if config.resume_from_checkpoint is None:
        return
    folder = Path(config.resume_from_checkpoint).expanduser()
    if not (folder / "trainer_state.json").is_file():
        what = "does not exist" if not folder.exists() else "is not a Trainer checkpoint (no trainer_state.json)"
        raise HarnessError(f"--resume-from-checkpoint (resume_from_checkpoint) {config.resume_from_checkpoint} {what}. Pass a checkpoint-N "
                           "folder the Trainer wrote (run with save_steps and checkpoint_dir to get some).")


CORRELATION_MINIMUM = 3  # eval examples a regression task's correlation needs to mean anything


def check_inputs(config: RunConfig) -> None:
    """Everything a cell reads, checked before it trains: values, the checkpoint's config.json (which must exist and
    whose position limit bounds max_length) and, for GLUE tasks read from TSVs, the data folder."""
    validate(config)
    check_checkpoint_folders(config)
    task = get_task(config.task)
    spec = models.get_model(config.model)
    limit = models.position_limit(spec)
    if config.max_length is not None and limit is not None and config.max_length > limit:
        raise HarnessError(f"max_length {config.max_length} exceeds what {config.model} can encode: its config.json "
                           f"allows {limit} token positions. Allowed: {shortest_length(task.is_pair)} to {limit}.")
    if task.is_regression and config.max_eval_samples is not None and config.max_eval_samples < CORRELATION_MINIMUM:
        raise HarnessError(f"--max-eval-samples (max_eval_samples) {config.max_eval_samples} is too few for "
                           f"{task.name}: its {task.primary_metric} correlation needs at least {CORRELATION_MINIMUM} "
                           f"eval examples (2 always correlate perfectly). Pass {CORRELATION_MINIMUM} or more, or "
                           "leave it out to evaluate the whole split.")
    if task.benchmark == "builtin":
        if config.source not in (None, "builtin"):
            raise HarnessError(f"Task {task.name!r} is built-in (generated by the harness); it has no "
                               f"{config.source} data. Drop --source (source), or use --source builtin.")
        return
    from harness.data.loading import check_hub_cache, resolve_source  # lazily: datasets is heavy

    source, directory = resolve_source(task, config.source, config.glue_dir)
    if source == "local" and directory is not None and task.benchmark == "glue":
        check_glue_dir(directory, task)
    if source == "hub":
        check_hub_cache(task)


# ------------------------------------------------------------------------------------------------ hand-over
# The one way a RunConfig reaches another process (upgrade-check's sides, the overhead benchmark): every field as
# JSON, run as given by `harness run --run-configs` (no preset re-applied, no setting rebuilt from flags).

def run_args(configs: Sequence[RunConfig], spec: Path, *, threads: int, output: Path) -> list[str]:
    """Write `configs` to `spec`; the `python` arguments of `harness run` training exactly them into `output`."""
    spec.write_text(json.dumps([dataclasses.asdict(c) for c in configs], indent=1))
    return ["-m", "harness.cli", "run", "--run-configs", str(spec), "--threads", str(threads), "--output",
            str(output)]


def read_run_configs(path: Path) -> list[RunConfig]:
    """RunConfigs written by `run_args` in another process: every field as given, validated."""
    try:
        configs = [RunConfig(**item) for item in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as err:
        raise HarnessError(f"--run-configs {path}: not a JSON list of RunConfig objects ({err}).") from None
    for config in configs:
        validate(config)
    return configs
