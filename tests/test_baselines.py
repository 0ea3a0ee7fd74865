"""Baseline files: schema versions, migrations, atomic writes, comparability, judging records against them."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from harness.store import baselines
from harness.core.record import SCHEMA_VERSION, RunRecord
from harness.store.results import SchemaError


def make_record(*, seed: int = 0, accuracy: float = 0.9, n: int = 200, task: str = "syn-sst2",
                model: str = "tiny-bert", lr: float = 1e-3, weights: str = "w1") -> dict[str, Any]:
    """A minimal run record of a classification cell whose first `accuracy * n` predictions are right."""
    labels = [i % 2 for i in range(n)]
    right = int(round(accuracy * n))
    preds = [lab if i < right else 1 - lab for i, lab in enumerate(labels)]
    curve = [{"epoch": 0.5, "step": 10, "validation": {"accuracy": accuracy * 0.7}},
             {"epoch": 1.0, "step": 20, "validation": {"accuracy": accuracy}}]
    return {
        "schema_version": SCHEMA_VERSION, "run_id": f"{seed:032x}", "cell": f"{task}-{model}-s{seed}",
        "created_at": "2026-01-01T00:00:00+00:00", "status": "ok", "error": None,
        "config": {"model": model, "task": task, "seed": seed, "preset": "smoke", "epochs": 1.0,
                   "train_batch_size": 32, "eval_batch_size": 64, "learning_rate": lr, "weight_decay": 0.01,
                   "warmup_ratio": 0.1, "max_length": 64, "max_train_samples": 512, "max_eval_samples": 512,
                   "data_seed": 0, "evals_per_epoch": 2, "precision": "fp32"},
        "task": {"name": task, "version": 1, "primary_metric": "accuracy", "metrics": ["accuracy"],
                 "higher_is_better": True, "is_regression": False},
        "env": {"device_class": "cpu-test-x1t", "env_key": "tf-test", "machine_id": "m1", "packages": {}},
        "data": {"source": "builtin", "rows_sha256": {"validation": "abc"}, "location": "/tmp/x", "rows": {}},
        "model": {"weights_sha256": {"model.safetensors": weights}, "num_parameters": 1000},
        "epochs": curve, "train_loss": [], "metrics": {"validation": {"accuracy": right / n}},
        "predict_contract": {}, "predictions": {"validation": {"idx": list(range(n)), "predictions": preds,
                                                                "labels": labels}},
        "timings": {"train_step_seconds": [0.01] * 20},
    }


def test_quality_baseline_round_trip_with_provenance(tmp_path: Path) -> None:
    record = RunRecord.from_dict(make_record())
    path = baselines.quality_path(tmp_path, "smoke", record.cell)
    baselines.write_baseline(path, baselines.quality_baseline(record, tier="smoke"))
    assert path == tmp_path / "smoke" / "any" / "syn-sst2-tiny-bert-s0.json"
    stored = baselines.read_baseline(path)
    assert stored["record"] == record.to_dict()
    provenance = stored["provenance"]
    assert {"seed", "preset", "device_class", "env_key", "packages", "data", "model_weights_sha256",
            "created_at"} <= set(provenance)
    assert "location" not in provenance["data"]  # where the bytes sat is not their identity
    assert baselines.load(tmp_path, "smoke").records == [record]
    assert baselines.read_baseline(tmp_path / "missing.json") is None


def test_unknown_versions_are_refused_with_instructions(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema_version": baselines.BASELINE_VERSION + 1, "kind": "quality"}))
    with pytest.raises(SchemaError, match="newer than this harness reads.*Upgrade the harness"):
        baselines.read_baseline(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SchemaError, match="not a harness baseline.*--harness-update-baselines"):
        baselines.read_baseline(path)
    path.write_text("{torn")
    with pytest.raises(SchemaError, match=r"b\.json is not valid JSON.*Restore it from version control"):
        baselines.read_baseline(path)


def test_old_versions_are_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = RunRecord.from_dict(make_record())
    old = {**baselines.quality_baseline(record, tier="smoke"), "schema_version": 1}
    old.pop("provenance")

    def update_to_2(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "provenance": {"migrated": True}}

    kind = baselines.BASELINE
    monkeypatch.setattr(baselines, "BASELINE", dataclasses.replace(kind, version=2, migrations={2: update_to_2}))
    path = tmp_path / "b.json"
    path.write_text(json.dumps(old))
    upgraded = baselines.read_baseline(path)
    assert upgraded["schema_version"] == 2 and upgraded["provenance"] == {"migrated": True}
    monkeypatch.setattr(baselines, "BASELINE", dataclasses.replace(kind, version=2, migrations={}))
    with pytest.raises(SchemaError, match="no migration to 2"):
        baselines.read_baseline(path)


def test_atomic_write_survives_kill_minus_nine(tmp_path: Path) -> None:
    """A writer killed mid-stream leaves the previous complete file, never a torn one."""
    target = tmp_path / "smoke" / "any" / "cell.json"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.base.jsonfile import write as write_json_atomic
        i = 0
        while True:
            write_json_atomic(Path({str(target)!r}), {{"i": i, "blob": "x" * 200000}})
            i += 1
    """)
    writer = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 20
        while not target.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    payload = json.loads(target.read_text())
    assert payload["i"] >= 0 and len(payload["blob"]) == 200000
    assert [p.name for p in target.parent.glob("*.json")] == ["cell.json"]  # staging files never look like cells


def test_length_grouped_predictions_before_dataset_order_are_not_paired() -> None:
    """Records made with group_by_length before the runner kept the dataset's order hold shuffled rows: their
    per-example predictions are left out of paired tests, unless the record says they are in dataset order."""
    from harness.judging.quality import seed_result

    data = make_record()
    assert seed_result(RunRecord.from_dict(data), "validation", "accuracy").predictions is not None
    data["config"]["group_by_length"] = True
    assert seed_result(RunRecord.from_dict(data), "validation", "accuracy").predictions is None
    data["predictions"]["validation"]["order"] = "dataset"
    assert seed_result(RunRecord.from_dict(data), "validation", "accuracy").predictions is not None
