"""Committed baselines under results/baselines/: paths, reading them as judging evidence, writing accepted results.

Layout (identity in the path; one file per cell, so updating one cell never touches another and concurrent
pytest-xdist workers never write the same file):

    <root>/<tier>/any/<task>-<model>-s<seed>.json                 quality: device-independent, one per seed
    <root>/<tier>/<device_class>/<task>-<model>.throughput.json   throughput: only judged on the same device class

Quality baseline, key by key (BASELINE_VERSION 1):
    schema_version  int   layout version of this file; unknown versions are refused with what to do
    kind            str   "quality"
    tier            str   the suite tier that wrote it ("smoke", "glue", "gpu")
    cell            str   "<task>-<model>-s<seed>"
    written_at      str   UTC ISO-8601 time the baseline was written
    provenance      dict  summary for humans and diffs: seed, preset, device_class, env_key, machine_id, package
                          versions, data source + file sha256s, model weights sha256
    record          dict  the complete run record (harness/core/record.py, with its own schema_version): final metrics,
                          per-example predictions/labels/idx, eval curve, config, env fingerprint, data/model
                          provenance, timings

Throughput baseline, key by key (BASELINE_VERSION 1):
    schema_version, kind ("throughput"), tier, written_at  as above
    group           str   "<task>-<model>" (throughput does not depend on the seed)
    device_class    str   env.fingerprint()["device_class"] of the machine that measured it
    source          str   "bench" (the suites' fixed rounds); absent in older files, read as "bench"
    context         dict  config (batch sizes, max_length, precision), env fingerprint, model provenance, data identity
    train           dict  harness.core.throughput.TrainBench.result(): step_seconds samples (warm-up excluded), rounds,
                          samples/s, non-padding tokens/s, busy_cores (other processes' CPU use while measuring)
    eval            dict  harness.core.throughput.EvalBench.result(): batch_seconds samples, samples/s, tokens/s, busy_cores
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.core.record import RunRecord
from harness.core.evidence import Evidence, Measurement, data_identity
from harness.base import jsonfile
from harness.base.jsonfile import JsonKind, SchemaError
from harness.store.results import RECORD

BASELINE_VERSION = 1
UPDATE_HINT = "create it with `pytest suites/ --harness-update-baselines` (add the same -m/-k/--harness-* options)"
BASELINE = JsonKind("harness baseline", BASELINE_VERSION, "re-create it: " + UPDATE_HINT,
                    migrations={},  # N -> update_to_N; none yet: version 1 is the first
                    required=("kind",))
KINDS = ("quality", "throughput")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ paths

def quality_relpath(tier: str, cell: str) -> str:
    return f"{tier}/any/{cell}.json"


def throughput_relpath(tier: str, device_class: str, group: str) -> str:
    return f"{tier}/{device_class}/{group}.throughput.json"


def quality_path(root: Path, tier: str, cell: str) -> Path:
    return Path(root) / quality_relpath(tier, cell)


def throughput_path(root: Path, tier: str, device_class: str, group: str) -> Path:
    return Path(root) / throughput_relpath(tier, device_class, group)


# ------------------------------------------------------------------------------------------------ reading

def upgrade_baseline(payload: Any, *, source: str) -> dict[str, Any]:
    """Bring a baseline to BASELINE_VERSION (and its embedded record to the record version), or refuse."""
    return _checked(BASELINE.upgrade(payload, source=source), source)


def _checked(payload: dict[str, Any], source: str) -> dict[str, Any]:
    if payload["kind"] not in KINDS:
        raise SchemaError(f"{source} is a baseline of unknown kind {payload['kind']!r} (known: {', '.join(KINDS)}); "
                          f"remove it from the baselines folder or {BASELINE.remedy}.")
    if payload["kind"] == "quality":
        payload["record"] = RECORD.upgrade(payload["record"], source=f"{source} (embedded run record)")
    return payload


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The upgraded baseline at `path`, or None when there is none."""
    if not Path(path).exists():
        return None
    return _checked(jsonfile.read(path, BASELINE), str(path))


def load(root: Path, tier: str) -> Evidence:
    """Every committed baseline of a tier, as evidence: quality records and throughput measurements."""
    folder = Path(root) / tier
    records = [RunRecord.from_dict(b["record"]) for p in sorted(folder.glob("any/*.json"))
               if (b := read_baseline(p)) is not None]
    measurements = [Measurement.from_dict(b) for p in sorted(folder.glob("*/*.throughput.json"))
                    if (b := read_baseline(p)) is not None]
    return Evidence(records=records, measurements=measurements)


# ------------------------------------------------------------------------------------------------ writing

def quality_baseline(record: RunRecord, *, tier: str) -> dict[str, Any]:
    env, model = record.env, record.model
    return {
        "schema_version": BASELINE_VERSION, "kind": "quality", "tier": tier, "cell": record.cell,
        "written_at": now_iso(),
        "provenance": {
            "seed": record.seed, "preset": record.config["preset"],
            "created_at": record.created_at, "device_class": env["device_class"], "env_key": env["env_key"],
            "machine_id": env["machine_id"], "packages": env["packages"], "harness": env.get("harness"),
            "data": data_identity(record.data), "model_weights_sha256": model.get("weights_sha256"),
        },
        "record": record.to_dict(),
    }


def throughput_baseline(measurement: Measurement, *, tier: str) -> dict[str, Any]:
    return {"schema_version": BASELINE_VERSION, "kind": "throughput", "tier": tier, "written_at": now_iso(),
            **measurement.to_dict()}


def write_baseline(path: Path, payload: Mapping[str, Any]) -> Path:
    return jsonfile.write(Path(path), payload)


def payloads(items: Iterable[RunRecord | Measurement], tier: str) -> dict[str, dict[str, Any]]:
    """The baseline files (path relative to the baselines root -> payload) storing `items` (what the judges picked,
    harness.judging.registry.baseline_items): a record as a quality baseline, a measurement as a throughput one."""
    out = {}
    for item in items:
        if isinstance(item, RunRecord):
            out[quality_relpath(tier, item.cell)] = quality_baseline(item, tier=tier)
        else:
            out[throughput_relpath(tier, item.device_class, item.group)] = throughput_baseline(item, tier=tier)
    return out


def write_payloads(root: Path, payloads: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Write baseline files under `root`; a throughput part not measured now keeps its stored value."""
    written = []
    for relpath, payload in sorted(payloads.items()):
        path = Path(root) / relpath
        if payload.get("kind") == "throughput":
            old = read_baseline(path) or {}
            payload = {**{k: old[k] for k in ("train", "eval") if k in old}, **payload}
        written.append(write_baseline(path, payload))
    return written
