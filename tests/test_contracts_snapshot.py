"""Contract snapshots: the committed files, `diff` on synthetic changes, schema refusal, the `contracts` command."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness import contracts
from harness.commands import contracts as contracts_command
from harness.core import compat
from harness.base.jsonfile import SchemaError

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent / "results" / "contracts"
OLD, NEW = "4.57.6", "5.24.0"  # the committed pair: last 4.x, current 5.x


def committed(version: str) -> dict[str, Any]:
    path = contracts.snapshot_path(SNAPSHOT_DIR, version)
    if not path.exists():
        pytest.skip(f"no committed contract snapshot for transformers {version} ({path})")
    return contracts.load_snapshot(path)


def minimal_snapshot() -> dict[str, Any]:
    """A small valid snapshot to mutate."""
    return {
        "schema_version": contracts.SNAPSHOT_SCHEMA_VERSION, "written_by": "test",
        "libraries": {"transformers": "1.0"},
        "situations": {
            "predict": {"type": "PredictionOutput", "predictions": {"type": "ndarray", "dtype": "float32",
                                                                    "shape": [5, 2]},
                        "label_ids": {"type": "ndarray", "dtype": "int64", "shape": [5]},
                        "metric_keys": ["test_loss", "test_runtime"],
                        "inputs_padding": {"within_batch": [0], "beyond_batch": [-100]}},
        },
        "signatures": {"TrainingArguments": {"no_cuda": {"kind": "keyword", "default": False},
                                             "seed": {"kind": "keyword", "default": 42}},
                       "Trainer.__init__": {"tokenizer": {"kind": "deprecated_alias", "default": None,
                                                          "alias_of": "processing_class"}}},
    }


def changes_of(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [str(c) for c in contracts.diff(old, new)]


# ------------------------------------------------------------------ the committed snapshots


@pytest.mark.parametrize("version", [OLD, NEW])
def test_committed_snapshot_is_current_schema_and_named_by_version(version: str) -> None:
    snapshot = committed(version)
    assert snapshot["libraries"]["transformers"] == version
    assert snapshot["schema_version"] == contracts.SNAPSHOT_SCHEMA_VERSION
    assert snapshot["written_by"].startswith("harness ")


def test_committed_diff_lists_the_real_differences_and_nothing_else() -> None:
    old, new = committed(OLD), committed(NEW)
    changes = contracts.diff(old, new)
    lines = [str(c) for c in changes]
    assert "Trainer.__init__: removed argument tokenizer (use processing_class)" in lines
    for name in set(compat.REMOVED_IN_V5) & set(old["signatures"]["TrainingArguments"]):
        assert any(line.startswith(f"TrainingArguments: removed argument {name}") for line in lines), name
    untrained_evaluate = [name for name in old["situations"] if name.startswith("evaluate") and "train()" not in name]
    assert untrained_evaluate
    for name in untrained_evaluate:
        assert f"{name}: metric_keys added epoch" in lines
    # Everything else is a signature change: no predict() situation and no trained evaluate() differs.
    situations = [c for c in changes if c.section in old["situations"]]
    assert {c.section for c in situations} == set(untrained_evaluate)
    assert all(c.what == "metric_keys added epoch" for c in situations)
    assert {c.section for c in changes} - set(untrained_evaluate) <= {"TrainingArguments", "Trainer.__init__"}


def test_diff_is_directional() -> None:
    old, new = committed(OLD), committed(NEW)
    backwards = changes_of(new, old)
    assert "Trainer.__init__: added argument tokenizer (default null)" in backwards
    assert "evaluate 2 labels: metric_keys removed epoch" in backwards


# ------------------------------------------------------------------ diff on synthetic changes


def test_identical_snapshots_have_no_changes() -> None:
    assert contracts.diff(minimal_snapshot(), minimal_snapshot()) == []


def test_library_versions_alone_are_not_changes() -> None:
    new = minimal_snapshot()
    new["libraries"] = {"transformers": "2.0", "torch": "9"}
    assert contracts.diff(minimal_snapshot(), new) == []


def test_diff_names_every_kind_of_change() -> None:
    old, new = minimal_snapshot(), minimal_snapshot()
    situation = new["situations"]["predict"]
    situation["metric_keys"] = ["test_loss", "test_epoch"]
    situation["predictions"]["dtype"] = "float64"
    situation["predictions"]["shape"] = [5]
    situation["label_ids"] = None
    situation["inputs_padding"]["beyond_batch"] = [0]
    new["situations"]["evaluate"] = {"metric_keys": []}
    args = new["signatures"]["TrainingArguments"]
    args["use_cpu"] = args.pop("no_cuda")
    args["seed"] = {"kind": "keyword", "default": 0}
    del new["signatures"]["Trainer.__init__"]["tokenizer"]
    assert changes_of(old, new) == [
        'predict: inputs_padding.beyond_batch changed from [-100] to [0]',
        'predict: label_ids changed from {"dtype": "int64", "shape": [5], "type": "ndarray"} to null (None-ness)',
        "predict: metric_keys added test_epoch; removed test_runtime",
        'predict: predictions.dtype changed from "float32" to "float64"',
        "predict: predictions.shape changed from [5, 2] to [5]",
        "evaluate: situation not observed in the older snapshot",
        "Trainer.__init__: removed argument tokenizer (use processing_class)",
        "TrainingArguments: removed argument no_cuda (use use_cpu)",
        "TrainingArguments: added argument use_cpu (default false)",
        "TrainingArguments: default of seed changed from 42 to 0",
    ]


def test_render_diff_groups_changes_by_section() -> None:
    old, new = minimal_snapshot(), minimal_snapshot()
    new["libraries"]["transformers"] = "2.0"
    new["situations"]["predict"]["metric_keys"] = ["test_loss"]
    text = contracts.render_diff(old, new, contracts.diff(old, new))
    assert text.splitlines()[0] == "transformers 1.0 -> 2.0: 1 change(s)"
    assert "predict\n  - metric_keys removed test_runtime" in text


# ------------------------------------------------------------------ files and schema


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    path = contracts.write_snapshot(minimal_snapshot(), tmp_path / "deep" / "transformers-1.0.json")
    assert contracts.load_snapshot(path) == minimal_snapshot()
    assert not list(path.parent.glob(".*.tmp")), "no staging file left behind"


@pytest.mark.parametrize("payload, message", [
    ({**minimal_snapshot(), "schema_version": contracts.SNAPSHOT_SCHEMA_VERSION + 1}, "Upgrade the harness"),
    ({**minimal_snapshot(), "schema_version": contracts.SNAPSHOT_SCHEMA_VERSION - 1}, "no migration to"),
    ({key: v for key, v in minimal_snapshot().items() if key != "schema_version"}, "not a contract snapshot"),
    ({**minimal_snapshot(), "schema_version": True}, "not a contract snapshot"),
    ({key: v for key, v in minimal_snapshot().items() if key != "signatures"}, "lacks 'signatures'"),
    ({**minimal_snapshot(), "situations": []}, "expected a JSON object for 'situations'"),
    ([1, 2], "not the object of a contract snapshot"),
], ids=["newer", "older", "missing", "bool", "no-signatures", "situations-not-an-object", "not-an-object"])
def test_load_refuses_unknown_schema_with_advice(tmp_path: Path, payload: Any, message: str) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(SchemaError, match=message) as caught:
        contracts.load_snapshot(path)
    assert "harness contracts snapshot" in str(caught.value) or "Upgrade" in str(caught.value)


def test_load_explains_bad_json_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SchemaError, match="not valid JSON"):
        contracts.load_snapshot(tmp_path / "bad.json")
    with pytest.raises(SchemaError, match="does not exist"):
        contracts.load_snapshot(tmp_path / "none.json")


def test_resolve_snapshot_by_version_or_path(tmp_path: Path) -> None:
    contracts.write_snapshot(minimal_snapshot(), contracts.snapshot_path(tmp_path, "1.0"))
    assert contracts.resolve_snapshot("1.0", tmp_path) == tmp_path / "transformers-1.0.json"
    assert contracts.resolve_snapshot(str(tmp_path / "x.json"), tmp_path) == tmp_path / "x.json"
    with pytest.raises(SchemaError, match=r"Available versions: 1\.0"):
        contracts.resolve_snapshot("9.9", tmp_path)


# ------------------------------------------------------------------ the command line


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    contracts_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_cli_diff_prints_changes_and_sets_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = minimal_snapshot(), copy.deepcopy(minimal_snapshot())
    new["situations"]["predict"]["metric_keys"].append("epoch")
    contracts.write_snapshot(old, contracts.snapshot_path(tmp_path, "1.0"))
    contracts.write_snapshot(new, tmp_path / "new.json")
    assert run_cli("contracts", "diff", "1.0", str(tmp_path / "new.json"), "--dir", str(tmp_path)) == 0
    assert "predict: " not in capsys.readouterr().out  # grouped: section header, then indented items
    assert run_cli("contracts", "diff", "1.0", str(tmp_path / "new.json"), "--dir", str(tmp_path),
                   "--exit-code") == 1
    assert "metric_keys added epoch" in capsys.readouterr().out
    assert run_cli("contracts", "diff", "1.0", "1.0", "--dir", str(tmp_path), "--exit-code") == 0


def test_cli_diff_of_committed_versions(capsys: pytest.CaptureFixture[str]) -> None:
    committed(OLD), committed(NEW)
    assert run_cli("contracts", "diff", OLD, NEW, "--dir", str(SNAPSHOT_DIR)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"transformers {OLD} -> {NEW}: ")
    assert "removed argument tokenizer (use processing_class)" in out


def test_cli_snapshot_writes_a_versioned_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(contracts, "observe", lambda lab: minimal_snapshot())  # the suite runs the real one
    assert run_cli("contracts", "snapshot", "--output", str(tmp_path)) == 0
    written = contracts.snapshot_path(tmp_path, str(compat.TRANSFORMERS_VERSION))
    assert contracts.load_snapshot(written) == minimal_snapshot()
    assert str(written) in capsys.readouterr().out
    assert run_cli("contracts", "snapshot", "--output", str(tmp_path / "deeper")) == 0  # made when missing
    assert contracts.snapshot_path(tmp_path / "deeper", str(compat.TRANSFORMERS_VERSION)).exists()
