"""Baseline files: schema versions, migrations, atomic writes, comparability, judging records against them."""

from __future__ import annotations

import copy
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

from harness import baselines
from harness.compare import NOT_COMPARABLE, REGRESSED, UNCHANGED
from harness.record import SCHEMA_VERSION
from harness.results import SchemaError


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
    record = make_record()
    path = baselines.quality_path(tmp_path, "smoke", record["cell"])
    baselines.write_baseline(path, baselines.quality_baseline(record, tier="smoke"))
    assert path == tmp_path / "smoke" / "any" / "syn-sst2-tiny-bert-s0.json"
    stored = baselines.read_baseline(path)
    assert stored["record"] == record
    provenance = stored["provenance"]
    assert {"seed", "preset", "device_class", "env_key", "packages", "data", "model_weights_sha256",
            "created_at"} <= set(provenance)
    assert "location" not in provenance["data"]  # where the bytes sat is not their identity
    assert baselines.quality_group(tmp_path, "smoke", "syn-sst2", "tiny-bert") == [record]
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
    with pytest.raises(SchemaError, match=r"b\.json is not valid JSON.*git checkout"):
        baselines.read_baseline(path)


def test_old_versions_are_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = make_record()
    old = {**baselines.quality_baseline(record, tier="smoke"), "schema_version": 1}
    old.pop("provenance")

    def update_to_2(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "provenance": {"migrated": True}}

    monkeypatch.setattr(baselines, "BASELINE_VERSION", 2)
    monkeypatch.setattr(baselines, "MIGRATIONS", {2: update_to_2})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(old))
    upgraded = baselines.read_baseline(path)
    assert upgraded["schema_version"] == 2 and upgraded["provenance"] == {"migrated": True}
    monkeypatch.setattr(baselines, "MIGRATIONS", {})
    with pytest.raises(SchemaError, match="no migration to 2"):
        baselines.read_baseline(path)


def test_atomic_write_survives_kill_minus_nine(tmp_path: Path) -> None:
    """A writer killed mid-stream leaves the previous complete file, never a torn one."""
    target = tmp_path / "smoke" / "any" / "cell.json"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.results import write_json_atomic
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
    assert baselines.quality_group(tmp_path, "smoke", "x", "y") == []  # staging files are never read as cells


def test_comparability_rules() -> None:
    base = make_record()
    assert baselines.why_not_comparable(base, make_record()) is None
    assert "learning_rate" in baselines.why_not_comparable(base, make_record(lr=1e-4))
    other_data = copy.deepcopy(base)
    other_data["data"]["rows_sha256"] = {"validation": "changed"}
    assert "data differ" in baselines.why_not_comparable(base, other_data)
    moved = copy.deepcopy(base)
    moved["data"]["location"] = "/elsewhere"
    assert baselines.why_not_comparable(base, moved) is None
    newer_task = copy.deepcopy(base)
    newer_task["task"]["version"] = 2
    assert "version 2" in baselines.why_not_comparable(base, newer_task)
    assert baselines.pairable(base, make_record()) == (True, None)
    assert baselines.pairable(base, make_record(weights="w2"))[0] is False


def test_judge_quality_against_records() -> None:
    base = [make_record(accuracy=0.9)]
    same = baselines.judge_quality("syn-sst2-tiny-bert", [make_record(accuracy=0.9)], base, alpha=0.01)
    assert [v.verdict for v in same] == [UNCHANGED] and same[0].p_value == 1.0
    worse = baselines.judge_quality("syn-sst2-tiny-bert", [make_record(accuracy=0.6)], base, alpha=0.01)
    assert worse[0].verdict == REGRESSED and worse[0].metric == "accuracy"
    missing = baselines.judge_quality("syn-sst2-tiny-bert", [make_record()], [], alpha=0.01)
    assert missing[0].verdict == NOT_COMPARABLE and "--harness-update-baselines" in missing[0].detail
    other_lr = baselines.judge_quality("syn-sst2-tiny-bert", [make_record(lr=1e-4)], base, alpha=0.01)
    assert other_lr[0].verdict == NOT_COMPARABLE and "learning_rate" in other_lr[0].detail
    unpaired = baselines.judge_quality("syn-sst2-tiny-bert", [make_record(weights="w2")], base, alpha=0.01)
    assert "unpaired" in unpaired[0].detail


def test_judge_convergence_reports_steps_and_seconds() -> None:
    base = [make_record(accuracy=0.9)]
    verdicts = baselines.judge_convergence("syn-sst2-tiny-bert", [make_record(accuracy=0.9)], base, fraction=0.9)
    assert verdicts[0].verdict == UNCHANGED and verdicts[0].now == 20
    assert verdicts[0].extras["seconds_now"] == pytest.approx(0.2)


def test_machine_drift_gate() -> None:
    steady = {"reference_seconds": [0.0033] * 6}
    assert baselines.machine_drift(steady, {"reference_seconds": [0.0034] * 6}, tolerance=0.1) is None
    slower = baselines.machine_drift(steady, {"reference_seconds": [0.004] * 6}, tolerance=0.1)
    assert slower and "+21% slower" in slower
    unsteady = baselines.machine_drift(steady, {"reference_seconds": [0.0033, 0.006]}, tolerance=0.1)
    assert baselines.machine_drift(steady, {"reference_seconds": [0.0033] * 5 + [0.006]}, tolerance=0.1) is None
    busy = baselines.machine_drift({**steady, "busy_cores": 0.02}, {**steady, "busy_cores": 1.03}, tolerance=0.1,
                                   busy_tolerance=0.25)
    assert busy and "other processes used 1.03 CPU cores" in busy
    assert unsteady and "unsteady" in unsteady


def test_inter_seed_flip_rate() -> None:
    records = [make_record(seed=0, accuracy=0.9), make_record(seed=1, accuracy=0.8)]
    assert baselines.inter_seed_flip_rate(records, "validation") == pytest.approx(0.1)


def test_compare_and_report_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from harness import report
    from harness.results import write_record

    root = tmp_path / "baselines"
    base = make_record(accuracy=0.9)
    baselines.write_baseline(baselines.quality_path(root, "smoke", base["cell"]),
                             baselines.quality_baseline(base, tier="smoke"))
    runs = tmp_path / "runs"
    worse = {**make_record(accuracy=0.6), "created_at": "2026-01-02T00:00:00+00:00"}
    write_record(worse, runs)
    parser = argparse.ArgumentParser(prog="harness")
    report.add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["compare", str(runs), "--baselines", str(root), "--markdown", str(tmp_path / "v.md")])
    assert args.handler(args) == 1
    captured = capsys.readouterr()
    assert "REGRESSED" in captured.out and "syn-sst2-tiny-bert accuracy" in captured.err
    assert "**REGRESSED**" in (tmp_path / "v.md").read_text()
    with pytest.raises(SystemExit, match="does not exist"):
        args = parser.parse_args(["compare", str(tmp_path / "nowhere")])
        args.handler(args)
    verdicts = baselines.judge_quality("syn-sst2-tiny-bert", [worse], [base], alpha=0.01)
    (tmp_path / "v.json").write_text(json.dumps(report.verdicts_payload(verdicts)))
    args = parser.parse_args(["report", str(tmp_path / "v.json"), "--format", "csv"])
    assert args.handler(args) == 1
    assert capsys.readouterr().out.startswith("cell,kind,metric,baseline,now,delta,interval,p,verdict,note")
