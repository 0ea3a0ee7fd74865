"""User task files: a TOML or YAML declaration read and validated into a `TaskSpec`, or one clear TaskFileError.

A task file names its text and label columns, its labels (or regression), its metrics, and where its rows are:
`[files]` (train/validation paths relative to the file: csv, tsv, json/jsonl, parquet) or `hub = "org/dataset"`.
Everything that can be checked without reading the rows is checked here, before any training.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import yaml

from harness.data.metrics import COMBINED, METRIC_FUNCTIONS
from harness.data.taskspec import ALIASES, TASKS, TaskSpec, UserSource
from harness.errors import TaskFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

SCHEMA_VERSION = 1  # the newest task-file schema this harness reads
SPLITS = ("train", "validation")  # the splits a user task declares, under [files] or hub_splits
# Data file suffix -> format read by data.py (json covers JSON Lines too).
FILE_FORMATS: Mapping[str, str] = MappingProxyType(
    {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"})
REGRESSION_METRICS = frozenset({"pearson", "spearmanr"})  # every other metric scores class ids
TEXT_KEYS: Mapping[int, tuple[str, ...]] = MappingProxyType({1: ("sentence",), 2: ("sentence1", "sentence2")})

_KEYS = ("schema_version", "name", "description", "version", "text_columns", "label_column", "label_names",
         "regression", "metrics", "primary_metric", "files", "hub", "hub_config", "revision", "hub_splits")
_REQUIRED = ("schema_version", "name", "text_columns", "metrics", "primary_metric")
_HUB_ONLY = ("hub_config", "revision", "hub_splits")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_KINDS = {str: "a string", int: "an integer", bool: "true or false", dict: "a table / mapping"}

_CACHE: dict[tuple[str, int], TaskSpec] = {}


def load(path: str | os.PathLike) -> TaskSpec:
    """The TaskSpec a task file declares, cached per (resolved path, mtime)."""
    given = Path(path).expanduser()
    resolved = given.resolve()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError:
        raise TaskFileError(f"Task file {given} does not exist (looked at {resolved}). Fix the path (relative paths "
                            f"start from the current directory), or name a registered task: "
                            f"{', '.join(TASKS)}.") from None
    key = (str(resolved), mtime)
    if key not in _CACHE:
        _CACHE[key] = parse(read(resolved), resolved)
    return _CACHE[key]


def read(path: Path) -> dict[str, Any]:
    """The raw key/value mapping of a TOML (.toml) or YAML (.yaml/.yml) file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"Task file {path} cannot be read as UTF-8 text ({exc}); save it as a UTF-8 "
                            "text file.") from None
    if path.suffix.lower() == ".toml":
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # the message names line and column
            raise TaskFileError(f"Task file {path} is not valid TOML: {exc}. Fix the syntax there (strings in "
                                'quotes, lists in [...], e.g. text_columns = ["text"]).') from None
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise TaskFileError(f"Task file {path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}. "
                                "Fix the syntax there (one `key: value` per line, lists as [a, b]).") from None
    if not isinstance(raw, dict):
        raise TaskFileError(f"Task file {path} must hold key/value pairs (name, text_columns, metrics, ...); it "
                            f"holds {type(raw).__name__}. See examples/tasks/reviews.toml.")
    return raw


def parse(raw: Mapping[str, Any], path: Path) -> TaskSpec:
    """Validate a task file's mapping (read from `path`) into a TaskSpec; the first problem raises."""
    f = _File(raw, path)
    _check_schema_version(f)
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        f.fail(f"unknown key {unknown[0]!r}.{_did_you_mean(unknown[0], _KEYS)} Allowed keys: {', '.join(_KEYS)}.")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        f.fail(f"missing required key(s) {', '.join(missing)}. Every task file needs {', '.join(_REQUIRED)}, "
               "and either [files] or hub.")

    name = _check_name(f)
    text = f.strings("text_columns", single_ok=True)
    if len(text) not in TEXT_KEYS:
        f.fail(f"text_columns names {len(text)} column(s); give one (single text) or two (a sentence pair), e.g. "
               'text_columns = ["text"].')
    label = f.get("label_column", str, "label")
    if label in text or "idx" in (label, *text):
        f.fail(f"label_column {label!r} and text_columns {list(text)} must be different columns, none named "
               "'idx' (reserved for row ids).")
    labels, regression = _check_labels(f)
    metrics = _check_metrics(f, labels, regression)
    primary = f.get("primary_metric", str)
    if primary not in metrics:
        f.fail(f"primary_metric {primary!r} is not among metrics {list(metrics)}; pick one of them or add it there.")
    version = f.get("version", int, 1)
    if version < 1:
        f.fail(f"version must be a positive integer (bump it when the task changes), got {version}.")

    files, hub_splits = _check_source(f)
    source = UserSource(task_file=str(path), text=text, label=label, files=MappingProxyType(files),
                        hub_splits=MappingProxyType(hub_splits))
    return TaskSpec(name=name, benchmark="user", text_keys=TEXT_KEYS[len(text)], label_names=labels, metrics=metrics,
                    primary_metric=primary, is_regression=regression, eval_splits=("validation",), test_splits=(),
                    hub_path=f.get("hub", str), hub_config=f.get("hub_config", str),
                    hub_revision=f.get("revision", str), user=source, description=f.get("description", str, ""),
                    version=version)


# ----------------------------------------------------------------------------------------------------- pieces

class _File:
    """A task file's raw mapping, with typed access and errors that name the file."""

    def __init__(self, raw: Mapping[str, Any], path: Path) -> None:
        self.raw, self.path = raw, path

    def fail(self, message: str) -> NoReturn:
        raise TaskFileError(f"Task file {self.path}: {message}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        """raw[key] (or `default` when absent), which must be of type `kind`."""
        if key not in self.raw:
            return default
        value = self.raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(f"{key} must be {_KINDS[kind]}, got {value!r}.")
        return value

    def strings(self, key: str, *, single_ok: bool = False) -> tuple[str, ...]:
        """raw[key] as distinct, non-empty strings (one bare string allowed where `single_ok`)."""
        value = self.raw[key]
        if single_ok and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{key} must be a list of non-empty strings (quote every item; YAML reads yes/no/on/off as "
                      f"booleans and bare digits as numbers), got {value!r}.")
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            self.fail(f"{key} lists {', '.join(map(repr, repeated))} more than once; list each item once.")
        return tuple(value)


def _check_schema_version(f: _File) -> None:
    version = f.raw.get("schema_version")
    if version is None:
        f.fail(f"schema_version is missing; add `schema_version = {SCHEMA_VERSION}` (YAML: `schema_version: "
               f"{SCHEMA_VERSION}`), the task-file format this harness reads.")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        f.fail(f"schema_version must be a positive integer, got {version!r}; this harness reads {SCHEMA_VERSION}.")
    if version > SCHEMA_VERSION:
        f.fail(f"schema_version {version} is newer than this harness supports (up to {SCHEMA_VERSION}); upgrade "
               f"the harness, or rewrite the file for schema_version {SCHEMA_VERSION}.")


def _check_name(f: _File) -> str:
    name = f.get("name", str)
    if not _NAME.fullmatch(name):
        f.fail(f"name {name!r} must be 1-64 letters, digits, '-' or '_', starting with a letter or digit (it "
               "names results and cache folders).")
    taken = ALIASES.get(name.lower(), name.lower())
    if taken in TASKS:
        f.fail(f"name {name!r} is already the {TASKS[taken].benchmark} task {taken!r}; rename your task (e.g. "
               f"name = \"{name}-custom\") so its results are never mistaken for the registered one.")
    return name


def _check_labels(f: _File) -> tuple[tuple[str, ...], bool]:
    regression = f.get("regression", bool)
    if "label_names" not in f.raw:
        if regression is False:
            f.fail("regression = false needs label_names, the class names in label-id order (e.g. label_names = "
                   '["negative", "positive"]); drop regression = false for a regression task.')
        return (), True
    if regression:
        f.fail("label_names is given but regression = true; a regression task has a numeric label and no "
               "label_names. Remove one of the two.")
    labels = f.strings("label_names")
    if len(labels) < 2:
        f.fail(f"label_names must name at least two classes, got {list(labels)}; omit it for a regression task.")
    return labels, False


def _check_metrics(f: _File, labels: tuple[str, ...], regression: bool) -> tuple[str, ...]:
    metrics = f.strings("metrics", single_ok=True)
    known = (*METRIC_FUNCTIONS, COMBINED)
    for metric in metrics:
        if metric not in known:
            f.fail(f"unknown metric {metric!r}.{_did_you_mean(metric, known)} Allowed: {', '.join(sorted(known))}.")
    kind = "regression" if regression else "classification"
    fitting = [m for m in known if m == COMBINED or (m in REGRESSION_METRICS) == regression]
    wrong = [m for m in metrics if m not in fitting]
    if wrong:
        f.fail(f"metric(s) {', '.join(wrong)} do not fit a {kind} task; use {', '.join(fitting)}.")
    if "f1" in metrics and len(labels) != 2:
        f.fail(f"f1 is the binary F1 of the second label and needs exactly two label_names, not {len(labels)}; "
               "use accuracy or matthews_correlation.")
    if metrics == (COMBINED,):
        f.fail(f"{COMBINED} averages the other metrics; list at least one more (e.g. metrics = "
               f"[\"{fitting[0]}\", \"{COMBINED}\"]).")
    return metrics


def _check_source(f: _File) -> tuple[dict[str, str], dict[str, str]]:
    """(split -> absolute data file, {}) for [files], or ({}, split -> hub split name) for hub."""
    if ("files" in f.raw) == ("hub" in f.raw):
        f.fail("give exactly one source of rows: a [files] table (train = \"...\", validation = \"...\", relative "
               "to this file) or hub = \"org/dataset\"" + (", not both." if "files" in f.raw else "."))
    if "hub" in f.raw:
        if not f.get("hub", str).strip():
            f.fail('hub must name a dataset on the Hugging Face Hub, e.g. hub = "org/dataset".')
        named = {**dict(zip(SPLITS, SPLITS)), **f.get("hub_splits", dict, {})}  # unnamed splits keep their name
        return {}, _split_table(f, "hub_splits", named)
    given = [k for k in _HUB_ONLY if k in f.raw]
    if given:
        f.fail(f"{', '.join(given)} only apply to hub datasets; remove them, or replace [files] with hub = ...")
    files = {}
    for split, name in _split_table(f, "files", f.get("files", dict)).items():
        data_file = (f.path.parent / name).resolve()
        if data_file.suffix.lower() not in FILE_FORMATS:
            f.fail(f"files.{split} = {name!r} has a format this harness does not read; supported endings: "
                   f"{', '.join(FILE_FORMATS)}. Convert the file (e.g. to .csv) and point at it.")
        if not data_file.is_file():
            f.fail(f"files.{split} = {name!r} does not exist (paths are relative to the task file's folder, so it "
                   f"was looked for at {data_file}). Fix the path or create the file.")
        files[split] = str(data_file)
    return files, {}


def _split_table(f: _File, key: str, table: Mapping[str, Any]) -> dict[str, str]:
    """A {train: ..., validation: ...} table of non-empty strings, checked key by key."""
    for split, value in table.items():
        if split not in SPLITS:
            f.fail(f"{key} has unknown split {split!r}.{_did_you_mean(split, SPLITS)} Allowed: {', '.join(SPLITS)}.")
        if not isinstance(value, str) or not value:
            f.fail(f"{key}.{split} must be a non-empty string, got {value!r}.")
    absent = [s for s in SPLITS if s not in table]
    if absent:
        f.fail(f"{key} lacks split(s) {', '.join(absent)}; a task needs both {' and '.join(SPLITS)}.")
    return dict(table)


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""
