"""`harness merge`: shard folders combine into one result set, each run once; a conflicting duplicate is refused
naming both files; end to end, a 2-shard `harness run` merged holds exactly the cells of the unsharded run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import results
from harness.store.merge import MergeConflict, merge

from test_baselines import make_record


def _write(root: Path, **kwargs) -> Path:
    record = make_record(**kwargs)
    return results.write_record(record, root)


def _measurement(root: Path, name: str, value: float) -> Path:
    path = root / "throughput" / "m1" / "tf-test" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "kind": "train-throughput", "tier": "smoke",
                                "group": "syn-sst2-tiny-bert", "device_class": "cpu-test-x1t", "measured_at": "t",
                                "context": {"env": {"machine_id": "m1", "env_key": "tf-test"}},
                                "train": {"step_seconds": [value]}}))
    return path


def _cells(root: Path) -> list[str]:
    return sorted(r["cell"] for r in results.load_records(results.find_records(root)))


def test_shards_merge_into_one_set_and_identical_duplicates_count_once(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    _write(a, seed=0)
    _write(a, seed=1)
    _write(b, seed=2)
    _write(b, seed=1)  # the same run (same run id, same content) in both folders
    _measurement(a, "syn-sst2-tiny-bert-train-1.json", 0.1)
    (b / "verdicts.json").write_text(json.dumps({"schema_version": 1, "verdicts": []}))
    assert main(["merge", str(a), str(b), "--output", str(out)]) == 0
    line = capsys.readouterr().out
    assert "3 run records and 1 throughput measurement" in line and "1 identical duplicate dropped" in line
    assert "1 file that hold no run result left out" in line
    assert _cells(out) == ["syn-sst2-tiny-bert-s0", "syn-sst2-tiny-bert-s1", "syn-sst2-tiny-bert-s2"]
    assert len(list(out.glob("throughput/m1/tf-test/*.json"))) == 1 and not (out / "verdicts.json").exists()
    # merging again (into itself, or with the same shards) adds nothing and writes nothing
    merged, written = merge([a, b], out)
    assert written == [] and merged.runs == 3
    assert len(results.find_records(out)) == 3


def test_a_conflicting_duplicate_names_both_files_and_writes_nothing(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    first = _write(tmp_path / "a", seed=0, accuracy=0.9)
    second = _write(tmp_path / "b", seed=0, accuracy=0.5)  # same run id, other content
    out = tmp_path / "out"
    with pytest.raises(MergeConflict) as caught:
        merge([tmp_path / "a", tmp_path / "b"], out)
    message = str(caught.value)
    assert f"run {'0' * 32}" in message and str(first) in message and str(second) in message
    assert not out.exists()
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line


def test_measurements_conflict_by_their_file(tmp_path: Path) -> None:
    _measurement(tmp_path / "a", "g-train-1.json", 0.1)
    _measurement(tmp_path / "b", "g-train-1.json", 0.2)
    with pytest.raises(MergeConflict, match="measurement throughput/m1/tf-test/g-train-1.json"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")


@pytest.mark.parametrize("case", ["missing", "empty", "output-is-file", "broken-json", "record-without-env"])
def test_bad_inputs_are_one_clear_error(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "a", tmp_path / "out"
    source.mkdir()
    expected = {"missing": "does not exist", "empty": "found no run records",
                "output-is-file": "is a file, not a folder", "broken-json": "cannot be read as JSON",
                "record-without-env": "lacks 'env' of a version"}[case]
    if case == "missing":
        source = tmp_path / "nowhere"
    elif case == "output-is-file":
        _write(source)
        out.write_text("")
    elif case == "broken-json":
        (source / "x.json").write_text("{")
    elif case == "record-without-env":
        (source / "x.json").write_text(json.dumps({k: v for k, v in make_record().items() if k != "env"}))
    assert main(["merge", str(source), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.startswith("harness: error:")


def test_two_shards_merged_equal_the_unsharded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's check, with real training: `harness run --shard 1/2` and `2/2` merged hold exactly the cells of
    the same `harness run` unsharded, each once."""
    argv = ["run", "--models", "tiny-bert", "--tasks", "syn-sst2,syn-stsb", "--epochs", "1",
            "--max-train-samples", "32", "--max-eval-samples", "16", "--threads", "1"]
    assert main([*argv, "--output", str(tmp_path / "whole")]) == 0
    for index in (1, 2):
        assert main([*argv, "--shard", f"{index}/2", "--output", str(tmp_path / f"shard{index}")]) == 0
    capsys.readouterr()
    shards = [_cells(tmp_path / f"shard{i}") for i in (1, 2)]
    assert shards[0] and shards[1] and not set(shards[0]) & set(shards[1])
    # a copy of shard 1 given twice (re-uploaded artifact) must not duplicate anything
    shutil.copytree(tmp_path / "shard1", tmp_path / "shard1-again")
    assert main(["merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), str(tmp_path / "shard1-again"),
                 "--output", str(tmp_path / "merged")]) == 0
    assert _cells(tmp_path / "merged") == _cells(tmp_path / "whole") == ["syn-sst2-tiny-bert-s0",
                                                                        "syn-stsb-tiny-bert-s0"]


def test_one_classifier_tells_every_stored_file_apart() -> None:
    """recordsets.kind_of is the one place that says what a stored JSON file holds (merge, compare, report use it)."""
    from harness.store.recordsets import kind_of

    record = make_record()
    assert kind_of(record) == "record"
    assert kind_of({"kind": "quality", "record": record}) == "baseline"
    assert kind_of({"kind": "throughput", "group": "g"}) == "baseline"
    assert kind_of({"kind": "train-throughput", "group": "g"}) == "measurement"
    assert kind_of({"verdicts": []}) == "verdicts"
    assert kind_of({"situations": {}}) == "snapshot"
    assert kind_of({"something": "else"}) is None and kind_of([record]) is None
