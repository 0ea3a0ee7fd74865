"""Load any set of stored JSON files or folders as judging evidence: run records, the suites' throughput
measurements, and committed baselines (so a baselines folder is one side of a comparison like any other)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from harness.core.record import RunRecord
from harness.judging.evidence import Evidence, Measurement
from harness.store import baselines, jsonfile
from harness.store.jsonfile import JsonKind, SchemaError
from harness.store.results import RECORD

MEASUREMENT = JsonKind("throughput measurement", 1, "re-measure it with `pytest suites/ -m benchmark`",
                       required=("group", "device_class", "context"))
_NOT_EVIDENCE = ("verdicts", "situations")  # verdict tables and contract snapshots may sit in the same folders


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
        if isinstance(payload, dict) and any(key in payload for key in _NOT_EVIDENCE):
            continue
        _add(evidence, payload, path)
    return evidence


def _add(evidence: Evidence, payload: object, path: Path) -> None:
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind in baselines.KINDS:
        stored = baselines.upgrade_baseline(payload, source=str(path))
        if kind == "quality":
            evidence.records.append(RunRecord.from_dict(stored["record"]))
        else:
            evidence.measurements.append(Measurement.from_dict(stored))
    elif isinstance(kind, str) and kind.endswith("-throughput"):
        evidence.measurements.append(Measurement.from_dict(MEASUREMENT.upgrade(payload, source=str(path))))
    else:
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
