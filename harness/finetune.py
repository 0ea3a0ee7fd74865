"""Your fine-tuning as input: a small TOML file naming the model, the task and the TrainingArguments you train with.

The same keys are read from `--config FILE`, from `harness.toml`, or from `[tool.harness]` of a pyproject.toml:

    model = "tiny-bert"          # registry name, checkpoint folder or hub id
    task = "syn-mrpc"            # built-in, GLUE name or a task file
    seeds = [0]
    [training_arguments]         # TrainingArguments keyword names
    gradient_accumulation_steps = 4
    lr_scheduler_type = "cosine"

`training_arguments` take TrainingArguments' own names; each maps to one RunConfig field, so every path that trains
(harness run, pytest suites/, upgrade-check) runs exactly these settings. A name the harness cannot reproduce is
refused with one message, as is a name TrainingArguments does not have. Without a file, `from_script` reads the
literal keyword arguments of a script's TrainingArguments(...) call and says which it could not read.
Light: no torch import.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig, make_config
from harness.errors import HarnessError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

NAME = "yours"  # the default name of your cells: yours-<task>-<model>-s<seed>
# TrainingArguments keyword -> RunConfig field (the same meaning on every supported transformers version; compat
# renames where a version spells it otherwise).
TRAINING_ARGUMENTS: Mapping[str, str] = {
    "num_train_epochs": "epochs", "per_device_train_batch_size": "train_batch_size",
    "per_device_eval_batch_size": "eval_batch_size", "learning_rate": "learning_rate",
    "weight_decay": "weight_decay", "warmup_ratio": "warmup_ratio", "warmup_steps": "warmup_steps",
    "gradient_accumulation_steps": "gradient_accumulation_steps", "lr_scheduler_type": "lr_scheduler_type",
    "optim": "optim", "max_grad_norm": "max_grad_norm", "label_smoothing_factor": "label_smoothing_factor",
    "data_seed": "sampler_seed", "group_by_length": "group_by_length",
    "eval_accumulation_steps": "eval_accumulation_steps",
}
# Flags that pick a RunConfig value: bf16=true -> precision "bf16".
PRECISION_FLAGS = {"bf16": "bf16", "fp16": "fp16"}
# Bookkeeping that changes no number the harness judges: accepted and left to the harness's own values.
IGNORED = frozenset({
    "output_dir", "overwrite_output_dir", "logging_dir", "logging_steps", "logging_strategy", "logging_first_step",
    "report_to", "run_name", "disable_tqdm", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
    "save_total_limit", "save_strategy", "save_steps", "eval_strategy", "evaluation_strategy", "eval_steps",
    "do_train", "do_eval", "do_predict", "dataloader_num_workers", "dataloader_pin_memory", "remove_unused_columns",
    "seed"})  # seed: given as `seeds` (several seeds, one cell each); a lone TrainingArguments seed is taken as one
# Top-level keys besides the table: RunConfig fields a fine-tune sets outside TrainingArguments.
TOP_LEVEL = ("model", "task", "seeds", "name", "preset", "max_length", "max_train_samples", "max_eval_samples",
             "trainer_class", "load_dtype", "training_arguments")
EVALS_PER_EPOCH = 2  # the harness's evaluation cadence for your cells (time to quality needs two evaluations)


@dataclass(frozen=True)
class FineTune:
    """One user's fine-tuning: where it was read, the cells it makes, and what could not be read."""

    source: str  # "harness.toml", "pyproject.toml [tool.harness]", "--script train.py", ...
    configs: tuple[RunConfig, ...]
    table: Mapping[str, Any] = field(default_factory=dict)  # the keys as read (paths resolved): to_toml writes them
    training_arguments: Mapping[str, Any] = field(default_factory=dict)  # as written
    ignored: tuple[str, ...] = ()  # bookkeeping names accepted and not reproduced
    unread: tuple[str, ...] = ()  # script arguments whose values are not literals
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        first = self.configs[0]
        given = ", ".join(f"{k}={v!r}" for k, v in self.training_arguments.items()) or "the preset's defaults"
        text = (f"your fine-tuning ({self.source}): {first.model} on {first.task}, seeds "
                f"{','.join(str(c.seed) for c in self.configs)}; {given}")
        if self.ignored:
            text += f"; not reproduced (bookkeeping): {', '.join(self.ignored)}"
        if self.unread:
            text += f"; could not read: {', '.join(self.unread)}"
        return text


def load(path: str | Path) -> FineTune:
    """Your fine-tuning from a TOML file: harness.toml style, or a pyproject.toml's [tool.harness]."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        hint = (f" (is it {path / 'harness.toml'} or {path / 'pyproject.toml'}?)" if path.is_dir() else "")
        raise HarnessError(f"--config {path} {what}{hint}. Pass a TOML file with model, task and "
                           "[training_arguments] (see examples/finetune/harness.toml).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise HarnessError(f"config {path} is not valid TOML: {err}. Fix the file (see "
                           "examples/finetune/harness.toml).") from None
    source = path.name
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("harness")
        source = f"{path} [tool.harness]"
        if not isinstance(raw, dict):
            raise HarnessError(f"{path} has no [tool.harness] table: add model, task and "
                               "[tool.harness.training_arguments] there, or pass a harness.toml with --config.")
    return parse(raw, source=str(source), base=path.parent)


def discover(folder: str | Path = ".") -> FineTune | None:
    """harness.toml, else pyproject.toml's [tool.harness], in `folder`; None when neither is there."""
    folder = Path(folder)
    if (folder / "harness.toml").is_file():
        return load(folder / "harness.toml")
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("harness")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None  # a project's broken pyproject.toml is not ours to refuse
        if isinstance(table, dict):
            return parse(table, source=f"{pyproject} [tool.harness]", base=folder)
    return None


def resolve(config: str | Path | None, folder: str | Path = ".") -> FineTune | None:
    """The fine-tuning named with --config, else the one found in `folder`, else None."""
    return load(config) if config is not None else discover(folder)


def parse(raw: Mapping[str, Any], *, source: str, base: Path = Path(".")) -> FineTune:
    """Validated cells from the file's keys; every problem is one HarnessError naming the key and what is allowed."""
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise HarnessError(f"{source}: unknown key(s) {', '.join(unknown)}{_close(unknown[0], TOP_LEVEL)}. "
                           f"Allowed: {', '.join(TOP_LEVEL)}.")
    for key in ("model", "task"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise HarnessError(f"{source}: `{key}` is required, a string (model: registry name, checkpoint folder "
                               "or hub id; task: built-in name, GLUE name or a task file).")
    arguments = raw.get("training_arguments", {})
    if not isinstance(arguments, Mapping):
        raise HarnessError(f"{source}: training_arguments must be a table of TrainingArguments keyword = value.")
    settings, ignored = settings_from(arguments, source)
    for key in ("max_length", "max_train_samples", "max_eval_samples", "trainer_class", "load_dtype"):
        if key in raw:
            settings[key] = raw[key]
    seeds = raw.get("seeds", [arguments["seed"]] if "seed" in arguments else [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise HarnessError(f"{source}: seeds must be a non-empty list of integers, e.g. [0, 1, 2]; got {seeds!r}.")
    name = raw.get("name", NAME)
    model, task = _local(raw["model"], base), _local(raw["task"], base)
    try:
        configs = tuple(make_config(model, task, seed=seed, preset=raw.get("preset", "smoke"), name=name,
                                    evals_per_epoch=EVALS_PER_EPOCH, **settings) for seed in seeds)
    except HarnessError as err:
        raise HarnessError(f"{source}: {err}") from None
    except TypeError as err:  # a value of the wrong type reaching RunConfig
        raise HarnessError(f"{source}: {err}") from None
    table = {**raw, "model": model, "task": task}
    return FineTune(source, configs, table, dict(arguments), tuple(sorted(ignored)))


def settings_from(arguments: Mapping[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """RunConfig fields from TrainingArguments keywords; refuses what the harness cannot reproduce."""
    settings: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in arguments.items():
        if key in TRAINING_ARGUMENTS:
            settings[TRAINING_ARGUMENTS[key]] = value
        elif key in PRECISION_FLAGS:
            if not isinstance(value, bool):
                raise HarnessError(f"{source}: training_arguments.{key} must be true or false, got {value!r}.")
            if value:
                settings["precision"] = PRECISION_FLAGS[key]
        elif key in IGNORED:
            ignored.append(key)
        else:
            raise HarnessError(_refusal(key, source))
    if settings.get("warmup_steps") is not None and "warmup_ratio" not in settings:
        settings["warmup_ratio"] = 0.0  # warm-up in steps replaces the preset's ratio
    return settings, ignored


def _refusal(key: str, source: str) -> str:
    supported = sorted([*TRAINING_ARGUMENTS, *PRECISION_FLAGS])
    if key in _training_arguments_names():
        return (f"{source}: training_arguments.{key} is a TrainingArguments setting the harness cannot reproduce "
                f"yet, so no verdict could cover it. Supported: {', '.join(supported)} (and, not reproduced, "
                f"{', '.join(sorted(IGNORED))}). Remove it to check the rest of your settings.")
    return (f"{source}: training_arguments.{key} is not a TrainingArguments keyword"
            f"{_close(key, [*supported, *IGNORED])}. Supported: {', '.join(supported)}.")


def _training_arguments_names() -> frozenset[str]:
    """TrainingArguments' keyword names in this environment (imported only to word a refusal)."""
    try:
        import inspect

        from transformers import TrainingArguments
    except ImportError:  # pragma: no cover - transformers is a dependency
        return frozenset()
    return frozenset(inspect.signature(TrainingArguments).parameters)


def _close(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def _local(value: str, base: Path) -> str:
    """A relative path in the file is relative to the file's folder (a checkpoint folder, a task file)."""
    candidate = base / value
    if not Path(value).is_absolute() and ("/" in value or value.endswith((".toml", ".yaml", ".yml"))) \
            and candidate.exists():
        return str(candidate.resolve())
    return value


# ------------------------------------------------------------------------------------------------ a training script

@dataclass(frozen=True)
class ScriptReading:
    arguments: dict[str, Any]  # literal keyword arguments of TrainingArguments(...)
    unread: list[str]  # keywords whose value is not a literal
    trainer_classes: list[str]  # classes the script derives from Trainer


def read_script(path: str | Path) -> ScriptReading:
    """The literal keyword arguments of a script's (first) TrainingArguments(...) call and its Trainer subclasses.
    Nothing is imported or run."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as err:
        raise HarnessError(f"--script {path} cannot be parsed as Python: {err}.") from None
    arguments: dict[str, Any] = {}
    unread: list[str] = []
    found = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node) in ("TrainingArguments", "Seq2SeqTrainingArguments") \
                and not found:
            found = True
            for keyword in node.keywords:
                if keyword.arg is None:
                    unread.append("**" + ast.unparse(keyword.value))
                    continue
                try:
                    arguments[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    unread.append(keyword.arg)
    trainers = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                and any(_called_name(b).endswith("Trainer") for b in n.bases)]
    if not found:
        raise HarnessError(f"--script {path} has no TrainingArguments(...) call to read; pass your settings as a "
                           "config file instead (--config, see examples/finetune/harness.toml).")
    return ScriptReading(arguments, unread, trainers)


def from_script(path: str | Path, *, model: str = "tiny-bert", task: str = "syn-mrpc") -> FineTune:
    """Your fine-tuning's settings read from a script, trained on `model` x `task` (the script's own model and data
    are not read: name them in a config file to check those too)."""
    reading = read_script(path)
    usable = {k: v for k, v in reading.arguments.items() if k in TRAINING_ARGUMENTS or k in PRECISION_FLAGS
              or k in IGNORED}
    skipped = sorted(set(reading.arguments) - set(usable))
    source = f"--script {Path(path).name}"
    settings, ignored = settings_from(usable, source)
    try:
        configs = (make_config(model, task, seed=int(reading.arguments.get("seed", 0)), name=NAME,
                               evals_per_epoch=EVALS_PER_EPOCH, **settings),)
    except HarnessError as err:
        raise HarnessError(f"{source}: {err}") from None
    notes = [f"trained on {model} x {task}: the script's own model and data are not read"]
    if skipped:
        notes.append(f"settings the harness cannot reproduce, left out: {', '.join(skipped)}")
    if reading.trainer_classes:
        notes.append(f"the script trains with its own Trainer subclass {', '.join(reading.trainer_classes)}, which "
                     "is not imported: name it as trainer_class = 'module:Class' in a config file to check it")
    table = {"model": model, "task": task, "seeds": [configs[0].seed], "training_arguments": usable}
    return FineTune(source, configs, table, usable, tuple(sorted(ignored)), tuple(reading.unread), tuple(notes))


def to_toml(finetune: FineTune) -> str:
    """The fine-tuning as a harness.toml (what another process reads with --harness-config)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} to TOML")

    lines = [f"# {finetune.source}"]
    lines += [f"{k} = {value(v)}" for k, v in finetune.table.items() if k != "training_arguments"]
    lines += ["[training_arguments]", *(f"{k} = {value(v)}" for k, v in
                                        finetune.table.get("training_arguments", {}).items())]
    return "\n".join(lines) + "\n"


def _called(node: ast.Call) -> str:
    return _called_name(node.func)


def _called_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
