"""Stored records: atomic writes, identity in paths, schema versions and migrations, pandas loading."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from harness.suite import matrix
from harness.core.record import SCHEMA_VERSION, RunRecord
from harness.judging.comparability import config_differences
from harness.base import jsonfile
from harness.store import baselines, results

REPO = Path(__file__).resolve().parent.parent


def _record(cell: str = "mrpc-minilm-s0", run_id: str = "abcdef0123456789") -> dict:
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "cell": cell, "created_at": "2026-11-25T10:00:00+00:00",
            "status": "ok", "error": None,
            "config": {"task": "mrpc", "model": "minilm", "seed": 0, "preset": "seed"},
            "task": {"metrics": ["accuracy", "f1", "combined_score"], "primary_metric": "accuracy"},
            "env": {"machine_id": "m1", "env_key": "tf5.24.0-torch2.13.0-aaaa", "device_class": "cpu-x",
                    "packages": {"transformers": "5.24.0", "torch": "2.13.0"}},
            "data": {}, "model": {}, "epochs": [], "train_loss": [],
            "metrics": {"validation": {"accuracy": 0.8, "f1": float("nan"), "combined_score": 0.5}},
            "predict_contract": {}, "predictions": {},
            "timings": {"train_wall_s": 10.0, "train_samples_per_second": 50.0, "peak_rss_bytes": 2**30,
                        "eval": {"validation": {"samples_per_second": 300.0, "tokens_per_second": 9000.0}}}}


def test_path_carries_machine_environment_and_cell(tmp_path: Path) -> None:
    path = results.write_record(_record(), tmp_path)
    assert path.relative_to(tmp_path).parts[:3] == ("runs", "m1", "tf5.24.0-torch2.13.0-aaaa")
    assert path.name.startswith("mrpc-minilm-s0-20261125T100000") and path.name.endswith("-abcdef01.json")


def test_round_trip_turns_nan_into_null(tmp_path: Path) -> None:
    path = results.write_record(_record(), tmp_path)
    assert "NaN" not in path.read_text()
    loaded = results.read_record(path)
    assert loaded["metrics"]["validation"]["f1"] is None
    assert loaded["metrics"]["validation"]["accuracy"] == 0.8


def test_shards_merge_by_copying_folders(tmp_path: Path) -> None:
    results.write_record(_record("a-m-s0", "1" * 16), tmp_path / "shard1")
    other = _record("b-m-s0", "2" * 16)
    other["env"] = {**other["env"], "machine_id": "m2"}
    results.write_record(other, tmp_path / "shard2")
    for shard in ("shard1", "shard2"):
        shutil.copytree(tmp_path / shard, tmp_path / "merged", dirs_exist_ok=True)
    frame = results.to_frame(results.load_records(results.find_records(tmp_path / "merged")))
    assert sorted(frame["cell"]) == ["a-m-s0", "b-m-s0"]


def test_failed_write_leaves_the_old_file_and_no_debris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.json"
    jsonfile.write(target, {"v": 1})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(jsonfile.os, "replace", broken_replace)
    with pytest.raises(OSError):
        jsonfile.write(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_newer_schema_is_refused_with_instructions(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**_record(), "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(results.SchemaError, match="Upgrade the harness"):
        results.read_record(path)


def test_missing_version_and_bad_json_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(results.SchemaError, match="not a run record"):
        results.read_record(tmp_path / "a.json")
    with pytest.raises(results.SchemaError, match="not valid JSON"):
        results.read_record(tmp_path / "b.json")


def test_migrations_run_in_order() -> None:
    steps = {2: lambda r: {**r, "trail": r["trail"] + [2]}, 3: lambda r: {**r, "trail": r["trail"] + [3]}}
    kind = jsonfile.JsonKind("test file", 3, "re-create it", steps)
    upgraded = kind.upgrade({"schema_version": 1, "trail": []}, source="t.json")
    assert (upgraded["trail"], upgraded["schema_version"]) == ([2, 3], 3)
    with pytest.raises(results.SchemaError, match="t.json is a test file of schema_version 0 and no migration to 1"):
        kind.upgrade({"schema_version": 0, "trail": []}, source="t.json")
    assert results.upgrade(_record(), source="r.json")["cell"] == "mrpc-minilm-s0"


def test_a_json_list_or_scalar_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(results.SchemaError, match=r"list\.json holds a JSON list, not the object of a run record"):
        results.read_record(path)


def test_files_are_readable_by_the_group(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        path = results.write_record(_record(), tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_frame_has_one_row_per_split_with_versions() -> None:
    frame = results.to_frame([_record()])
    row = frame.iloc[0]
    assert (row["split"], row["accuracy"], row["transformers"], row["eval_samples_s"]) == (
        "validation", 0.8, "5.24.0", 300.0)


def test_a_version_1_record_reads_with_an_empty_trajectory(tmp_path: Path) -> None:
    old = {key: value for key, value in _record().items() if key != "trajectory"}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({**old, "schema_version": 1}))
    loaded = results.read_record(path)
    assert (loaded["schema_version"], loaded["trajectory"]) == (SCHEMA_VERSION, [])
    assert RunRecord.from_dict(loaded).trajectory == []


def test_committed_baselines_read_and_stay_comparable() -> None:
    """The committed smoke baselines read at the current schema and their configs compare equal to what the smoke
    tier runs now; so do the same configs as written before the Trainer settings existed (keys missing)."""
    paths = sorted((REPO / "results" / "baselines" / "smoke" / "any").glob("*.json"))
    assert paths
    now = {cell.id: cell.config for cell in matrix.cells("smoke")}
    later = ("gradient_accumulation_steps", "lr_scheduler_type", "optim", "max_grad_norm", "label_smoothing_factor",
             "load_dtype", "group_by_length", "resolved_optim", "resolved_mixed_precision", "world_size")
    for path in paths:
        record = RunRecord.from_dict(baselines.read_baseline(path)["record"])
        assert record.schema_version == SCHEMA_VERSION
        assert config_differences(record.config, dataclasses.asdict(now[record.cell])) == []
        older = {k: v for k, v in record.config.items() if k not in later}
        assert config_differences(older, dataclasses.asdict(now[record.cell])) == []
