"""Load any set of stored JSON files or folders as judging evidence: run records, the suites' throughput
measurements, and committed baselines (so a baselines folder is one side of a comparison like any other)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from harness.core.record import RunRecord
from harness.core.evidence import Evidence, Measurement
from harness.base import jsonfile
from harness.store import baselines
from harness.base.jsonfile import JsonKind, SchemaError
from harness.store.results import RECORD

MEASUREMENT = JsonKind("throughput measurement", 1, "re-measure it with `pytest suites/ -m benchmark`",
                       required=("group", "device_class", "context"))


def kind_of(payload: object) -> str | None:
    """What a stored JSON file holds: "record", "measurement", "baseline", "verdicts" (a verdict table), "snapshot"
    (contract situations), or None. The one place that tells them apart."""
    if not isinstance(payload, dict):
        return None
    kind = payload.get("kind")
    if "verdicts" in payload:
        return "verdicts"
    if "situations" in payload:
        return "snapshot"
    if kind in baselines.KINDS:
        return "baseline"
    if isinstance(kind, str) and kind.endswith("-throughput"):
        return "measurement"
    if "run_id" in payload and "cell" in payload:
        return "record"
    return None


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """JSON files named, or found under folders named; an error for a path that is neither."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.glob("**/*.json") if not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise SchemaError(f"{item} does not exist; pass run record files or folders holding them "
                              "(e.g. results/runs or results/baselines).")
    return found


def load(paths: Iterable[str | Path]) -> Evidence:
    """Every record, measurement and baseline under `paths`; SchemaError naming the first file that is none."""
    evidence = Evidence()
    for path in expand(paths):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SchemaError(f"{path} cannot be read as JSON ({err}); move it out of the folder or restore it.") \
                from None
        if kind_of(payload) not in ("verdicts", "snapshot"):  # they may sit in the same folders
            _add(evidence, payload, path)
    return evidence


def _add(evidence: Evidence, payload: object, path: Path) -> None:
    kind = kind_of(payload)
    if kind == "baseline":
        stored = baselines.upgrade_baseline(payload, source=str(path))
        if stored["kind"] == "quality":
            evidence.records.append(RunRecord.from_dict(stored["record"]))
        else:
            evidence.measurements.append(Measurement.from_dict(stored))
    elif kind == "measurement":
        evidence.measurements.append(Measurement.from_dict(MEASUREMENT.upgrade(payload, source=str(path))))
    else:  # a record, or what RECORD.upgrade names as unreadable
        evidence.records.append(RunRecord.from_dict(RECORD.upgrade(payload, source=str(path))))


def write_measurement(root: Path, tier: str, part: str, measurement: Measurement, stamp: str, tag: str) -> Path:
    """One part of a suite's throughput measurement under root/throughput/<machine>/<env>/ (never overwritten)."""
    env = measurement.context["env"]
    path = (Path(root) / "throughput" / env["machine_id"] / env["env_key"]
            / f"{measurement.group}-{part}-{stamp}-{tag}.json")
    payload = {"schema_version": MEASUREMENT.version, "kind": f"{part}-throughput", "tier": tier,
               "measured_at": measurement.measured_at, "group": measurement.group,
               "device_class": measurement.device_class, "context": dict(measurement.context),
               part: dict(measurement.parts[part])}
    return jsonfile.write(path, payload)
