"""User task files: TOML/YAML parsing, one clear error per bad file, rows in the hub schema, an end-to-end run."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import textwrap
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core import runner
from harness.data import taskfile
from harness.data.loading import file_sha256, load_task
from harness.data.tasks import TaskSpec, get_task
from harness.errors import DataError, HarnessError, TaskFileError

from harness.core.config import make_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tasks" / "reviews.toml"

TOML = """\
schema_version = 1
name = "reviews"
description = "product reviews"
text_columns = ["text"]
label_column = "stars_label"
label_names = ["negative", "positive"]
metrics = ["accuracy", "f1"]
primary_metric = "accuracy"
[files]
train = "train.csv"
validation = "dev.csv"
"""

YAML = """\
schema_version: 1
name: reviews
description: product reviews
text_columns: [text]
label_column: stars_label
label_names: [negative, positive]
metrics: [accuracy, f1]
primary_metric: accuracy
files:
  train: train.csv
  validation: dev.csv
"""

REGRESSION = (TOML.replace('label_names = ["negative", "positive"]\n', "regression = true\n")
              .replace('["accuracy", "f1"]', '["pearson", "spearmanr", "combined_score"]')
              .replace('primary_metric = "accuracy"', 'primary_metric = "pearson"'))

CSV = 'text,stars_label,other\nGood stuff,positive,x\n"Bad, really",negative,y\n007,1,z\nNA,0,\n'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def task_file(folder: Path, text: str = TOML, name: str = "task.toml", data: str = CSV) -> Path:
    """A task file beside train.csv and dev.csv holding `data`."""
    write(folder, "train.csv", data)
    write(folder, "dev.csv", data)
    return write(folder, name, text)


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


# ------------------------------------------------------------------------------------------- parsing

def test_toml_and_yaml_declare_the_same_task(tmp_path: Path) -> None:
    toml_spec = get_task(str(task_file(tmp_path)))
    yaml_spec = get_task(str(task_file(tmp_path, YAML, "task.yaml")))
    assert toml_spec.name == "reviews" and toml_spec.benchmark == "user" and toml_spec.version == 1
    assert toml_spec.text_keys == ("sentence",) and toml_spec.label_names == ("negative", "positive")
    assert toml_spec.user is not None and toml_spec.user.files["train"] == str(tmp_path / "train.csv")
    assert toml_spec.eval_splits == ("validation",) and toml_spec.splits == ("train", "validation")

    def without_origin(spec: TaskSpec) -> TaskSpec:
        assert spec.user is not None
        return dataclasses.replace(spec, user=dataclasses.replace(spec.user, task_file=""))
    assert without_origin(toml_spec) == without_origin(yaml_spec)
    assert get_task(str(task_file(tmp_path, YAML, "task.yml"))).metrics == ("accuracy", "f1")


def test_pairs_regression_defaults_and_the_example(tmp_path: Path) -> None:
    pair = edit(TOML, 'text_columns = ["text"]', 'text_columns = ["q", "a"]')
    assert get_task(str(task_file(tmp_path, pair))).text_keys == ("sentence1", "sentence2")
    implicit = REGRESSION.replace("regression = true\n", "")  # no label_names: regression
    spec = get_task(str(task_file(tmp_path, implicit, "r.toml")))
    assert spec.is_regression and spec.num_labels == 1 and spec.label_names == ()
    example = get_task(str(EXAMPLE))
    assert (example.name, example.benchmark, example.primary_metric) == ("reviews", "user", "accuracy")


def test_lookup_is_cached_per_file_version(tmp_path: Path) -> None:
    path = task_file(tmp_path)
    first = get_task(str(path))
    assert get_task(f" {path} ") is first and get_task(str(tmp_path / "." / "task.toml")) is first
    path.write_text(edit(TOML, "[files]", "version = 3\n[files]"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse clocks
    assert get_task(str(path)).version == 3


# ------------------------------------------------------------------------------------------- bad files

BAD_FILES = {
    "not TOML": (TOML.replace('name = "reviews"', "name = reviews"), r"is not valid TOML: .*line 2"),
    "unknown key": (TOML.replace("primary_metric", "primary_metrc"),
                    r"unknown key 'primary_metrc'\. Did you mean: primary_metric\? Allowed keys: schema_version"),
    "missing keys": (TOML.replace('metrics = ["accuracy", "f1"]\n', ""), r"missing required key\(s\) metrics\."),
    "unknown metric": (TOML.replace('"f1"', '"acuracy"'),
                       r"unknown metric 'acuracy'\. Did you mean: accuracy\? Allowed: accuracy, combined_score, f1, "
                       r"matthews_correlation, pearson, spearmanr\."),
    "primary not listed": (TOML.replace('primary_metric = "accuracy"', 'primary_metric = "matthews_correlation"'),
                           r"primary_metric 'matthews_correlation' is not among metrics \['accuracy', 'f1'\]"),
    "no text column": (TOML.replace('["text"]', "[]"), r"text_columns names 0 column\(s\); give one .* or two"),
    "three text columns": (TOML.replace('["text"]', '["a", "b", "c"]'), r"text_columns names 3 column\(s\)"),
    "labels and regression": (TOML.replace("[files]", "regression = true\n[files]"),
                              r"label_names is given but regression = true"),
    "files and hub": (TOML.replace("[files]", 'hub = "org/data"\n[files]'), r"exactly one source of rows.*not both"),
    "neither files nor hub": (TOML.split("[files]")[0], r"exactly one source of rows: a \[files\] table"),
    "missing data file": (TOML.replace('"dev.csv"', '"data/dev.csv"'),
                          r"files.validation = 'data/dev.csv' does not exist \(paths are relative to the task file"),
    "unsupported format": (TOML.replace('"dev.csv"', '"dev.xlsx"'),
                           r"'dev.xlsx' has a format this harness does not read; supported endings: \.csv, \.tsv, "
                           r"\.json, \.jsonl, \.parquet"),
    "unknown split": (TOML.replace("validation =", "dev ="), r"files has unknown split 'dev'\. Allowed: train, "
                                                             r"validation"),
    "no schema_version": (TOML.replace("schema_version = 1\n", ""), r"schema_version is missing; add "
                                                                    r"`schema_version = 1`"),
    "newer schema": (TOML.replace("schema_version = 1", "schema_version = 2"),
                     r"schema_version 2 is newer than this harness supports \(up to 1\); upgrade the harness"),
    "GLUE name": (TOML.replace('"reviews"', '"MRPC"'), r"name 'MRPC' is already the glue task 'mrpc'; rename"),
    "GLUE spelling": (TOML.replace('"reviews"', '"sst-2"'), r"already the glue task 'sst2'"),
    "built-in name": (TOML.replace('"reviews"', '"syn-sst2"'), r"already the builtin task 'syn-sst2'"),
    "path-like name": (TOML.replace('"reviews"', '"my/reviews"'), r"name 'my/reviews' must be 1-64 letters"),
    "metric for the other kind": (TOML.replace('"f1"', '"pearson"'),
                                  r"metric\(s\) pearson do not fit a classification task; use accuracy, f1"),
    "hub keys with files": (TOML.replace("[files]", 'revision = "main"\n[files]'),
                            r"revision only apply to hub datasets"),
    "wrong type": (TOML.replace('primary_metric = "accuracy"', "primary_metric = 1"),
                   r"primary_metric must be a string, got 1"),
    "label and text clash": (TOML.replace('"stars_label"', '"text"'), r"must be different columns"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_bad_file_gets_one_clear_error(tmp_path: Path, case: str) -> None:
    text, message = BAD_FILES[case]
    path = task_file(tmp_path, text)
    with pytest.raises(TaskFileError, match=message) as err:
        get_task(str(path))
    assert str(err.value).startswith(f"Task file {path}")


@pytest.mark.parametrize("text, message", [
    ("name: [unclosed\n", r"is not valid YAML at line 2"),
    ("- a list\n", r"must hold key/value pairs .* it holds list"),
    (YAML.replace("name: reviews", "name:"), r"name must be a string, got None"),
    (YAML.replace("[negative, positive]", "[yes, no]"), r"label_names must be a list of non-empty strings \(quote "
                                                        r"every item; YAML reads yes/no"),
])
def test_yaml_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TaskFileError, match=message):
        get_task(str(task_file(tmp_path, text, "task.yaml")))


def test_missing_task_file_is_not_an_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match=r"Task file .*nope\.toml does not exist .* name a registered task: "
                                            r"cola"):
        get_task(str(tmp_path / "nope.toml"))


# ------------------------------------------------------------------------------------------- rows

def test_csv_rows_labels_idx_and_provenance(tmp_path: Path) -> None:
    spec = get_task(str(task_file(tmp_path)))
    td = load_task(spec)
    dev = td.splits["validation"]
    assert dev.column_names == ["sentence", "label", "idx"]
    assert dev.features["label"] == datasets.ClassLabel(names=["negative", "positive"])
    assert dev["sentence"] == ["Good stuff", "Bad, really", "007", "NA"]  # read verbatim: no 7, no null
    assert dev["label"] == [1, 0, 1, 0] and dev["idx"] == [0, 1, 2, 3]  # names and ids both accepted
    prov = td.provenance
    assert prov["source"] == "local" and prov["task_file"] == str(tmp_path / "task.toml")
    assert prov["paths"]["train"] == str(tmp_path / "train.csv")
    assert prov["files"]["validation"] == {"file": "dev.csv", "format": "csv", "rows": 4,
                                           "sha256": file_sha256(tmp_path / "dev.csv"),
                                           "bytes": (tmp_path / "dev.csv").stat().st_size}

    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    assert load_task(get_task(str(moved / "task.toml"))).fingerprint == td.fingerprint  # bytes, not location
    write(moved, "dev.csv", CSV.replace("Good", "Fine"))
    assert load_task(get_task(str(moved / "task.toml"))).fingerprint != td.fingerprint


ROWS = [{"question": "q one", "answer": "a one", "label": 1, "idx": 10},
        {"question": "q two", "answer": "a two", "label": "contradiction", "idx": 20}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".tsv"])
def test_other_formats_load_the_same_rows(tmp_path: Path, suffix: str) -> None:
    rows = [dict(r, label=str(r["label"])) for r in ROWS] if suffix in (".parquet", ".tsv") else ROWS
    path = tmp_path / f"dev{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        lines = ["\t".join(rows[0]), *("\t".join(map(str, r.values())) for r in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = (TOML.replace('["text"]', '["question", "answer"]').replace('label_column = "stars_label"\n', "")
            .replace('["negative", "positive"]', '["entailment", "neutral", "contradiction"]')
            .replace('["accuracy", "f1"]', '["accuracy"]').replace('"train.csv"', f'"dev{suffix}"')
            .replace('"dev.csv"', f'"dev{suffix}"'))
    dev = load_task(get_task(str(write(tmp_path, "task.toml", text)))).splits["validation"]
    assert dev.to_dict() == {"sentence1": ["q one", "q two"], "sentence2": ["a one", "a two"], "label": [1, 2],
                             "idx": [10, 20]}


def test_regression_task(tmp_path: Path) -> None:
    spec = get_task(str(task_file(tmp_path, REGRESSION, data="text,stars_label\na,4.5\nb,1\nc, 0.25 \n")))
    dev = load_task(spec).splits["validation"]
    assert dev.features["label"] == datasets.Value("float32") and dev["label"] == [4.5, 1.0, 0.25]
    write(tmp_path, "dev.csv", "text,stars_label\na,high\n")
    with pytest.raises(DataError, match=r"dev.csv, data row 1: label 'high' .* Allowed: a finite number"):
        load_task(spec)


@pytest.mark.parametrize("data, message", [
    ("words,stars_label\na,positive\n", r"column\(s\) \['text'\] named in .*task.toml are not there; the columns "
                                        r"found are \['words', 'stars_label'\]"),
    ("text,stars_label\na,positive\nb,meh\n", r"dev.csv, data row 2: label 'meh' \(column 'stars_label'\) is not "
                                              r"valid for reviews\. Allowed: 0 or 'negative', 1 or 'positive'.*add it "
                                              r"to label_names"),
    ("text,stars_label\na,2\n", r"label '2'"),
    ("text,stars_label\n", r"has no rows"),
    ("text,stars_label,idx\na,1,0\nb,0,0\n", r"idx 0 appears more than once"),
    ("text,stars_label,idx\na,1,x\n", r"data row 1: idx 'x' is not a row id"),
    ('text,stars_label\n"unclosed,1\n', r"dev.csv could not be read as csv"),
])
def test_bad_rows_name_file_row_and_fix(tmp_path: Path, data: str, message: str) -> None:
    spec = get_task(str(task_file(tmp_path)))
    write(tmp_path, "dev.csv", data)
    with pytest.raises(DataError, match=message):
        load_task(spec, splits=["validation"])


def test_null_text_in_json(tmp_path: Path) -> None:
    write(tmp_path, "dev.jsonl", '{"text": "a", "stars_label": 1}\n{"text": null, "stars_label": 0}\n')
    spec = get_task(str(task_file(tmp_path, TOML.replace('"dev.csv"', '"dev.jsonl"'))))
    with pytest.raises(DataError, match=r"dev.jsonl, data row 2: text column 'text' is empty \(null or blank\)"):
        load_task(spec, splits=["validation"])


# ------------------------------------------------------------------------------------------- hub variant

HUB = TOML.split("[files]")[0] + 'hub = "someone/reviews"\nhub_splits = { validation = "test" }\n'


def test_hub_task_offline_fails_fast_pointing_at_files(tmp_path: Path) -> None:
    path = task_file(tmp_path, HUB)
    spec = get_task(str(path))
    assert (spec.hub_path, spec.hub_config, spec.hub_revision) == ("someone/reviews", None, None)
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_task(spec)
    assert time.perf_counter() - start < 5
    for part in ("someone/reviews", "offline mode is on", "the hub is unreachable", str(path), "under [files]",
                 'train = "..."'):
        assert part in str(err.value)
    with pytest.raises(DataError, match=r"reads its rows from the hub \(someone/reviews\).*use source 'hub'"):
        load_task(spec, source="local")


def test_hub_rows_are_mapped_like_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {"text": ["a", "b"], "stars_label": ["negative", "positive"], "extra": [1, 2]}
    hub = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows) for s in ("train", "test")})
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or hub)
    spec = get_task(str(task_file(tmp_path, HUB + 'revision = "v2"\n')))
    td = load_task(spec)
    assert calls[0][0] == ("someone/reviews", None) and calls[0][1]["revision"] == "v2"
    assert td.splits["validation"].to_dict() == {"sentence": ["a", "b"], "label": [0, 1], "idx": [0, 1]}
    assert td.provenance["requested_revision"] == "v2" and td.provenance["columns"]["label"] == "stars_label"
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict({"train": hub["train"]}))
    with pytest.raises(DataError, match=r"has no split\(s\) \['test'\].*hub_splits"):
        load_task(spec)


def test_task_files_are_harness_errors() -> None:
    assert issubclass(TaskFileError, HarnessError) and taskfile.SCHEMA_VERSION == 1


# ------------------------------------------------------------------------------------------- end to end

def test_example_task_trains_end_to_end() -> None:
    # A few seconds: 75 steps of batch 8. The dev set's majority class is 0.59; a frozen model stays there.
    config = make_config("tiny-bert", str(EXAMPLE), preset="smoke", max_train_samples=200, epochs=3.0,
                         train_batch_size=8)
    record = runner.run(config)
    assert record.status == "ok" and record.task["name"] == "reviews" and record.task["benchmark"] == "user"
    assert record.cell == "reviews-tiny-bert-s0"
    scores = record.metrics["validation"]
    assert {"accuracy", "f1"} <= set(scores) and scores["accuracy"] >= 0.75, scores  # it learned
    predictions = record.predictions["validation"]
    assert predictions["idx"] == list(range(80)) and len(predictions["predictions"]) == 80
    with open(EXAMPLE.parent / "reviews_dev.csv", newline="", encoding="utf-8") as fh:
        expected = [["negative", "positive"].index(row["stars_label"]) for row in csv.DictReader(fh)]
    assert predictions["labels"] == expected  # the file's labels reached the Trainer in row order
    assert record.data["files"]["train"]["sha256"] == file_sha256(EXAMPLE.parent / "reviews_train.csv")
