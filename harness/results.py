"""Versioned JSON records under results/: atomic writes, identity in paths, migrations, pandas loading.

Layout: <root>/runs/<machine_id>/<env_key>/<cell>-<UTC time>-<run id>.json, one file per run, so shards from many
machines merge by copying folders and concurrent writers (pytest-xdist workers, torchrun ranks) never collide.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.record import SCHEMA_VERSION, RunRecord

# update_to_N turns a version N-1 record into version N. None so far: version 1 is the first.
MIGRATIONS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class SchemaError(HarnessError):
    """A stored JSON file whose schema version this harness cannot read."""


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON so that readers see the old file or the complete new one, never a torn write (even on kill -9)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(payload), indent=1, sort_keys=False, allow_nan=False)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def record_path(root: Path, record: Mapping[str, Any]) -> Path:
    env = record["env"]
    stamp = record["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    return (Path(root) / "runs" / env["machine_id"] / env["env_key"]
            / f"{record['cell']}-{stamp}-{record['run_id'][:8]}.json")


def write_record(record: RunRecord | Mapping[str, Any], root: Path) -> Path:
    payload = record.to_dict() if isinstance(record, RunRecord) else dict(record)
    return write_json_atomic(record_path(root, payload), payload)


def upgrade(payload: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Bring a stored record to SCHEMA_VERSION, or refuse with what to do."""
    version = payload.get("schema_version")
    if not isinstance(version, int):
        raise SchemaError(f"{source} has no integer 'schema_version'; it is not a harness record. "
                          "Move it out of the results folder or re-create it with `harness run`.")
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{source} has schema_version {version}, newer than this harness reads "
                          f"({SCHEMA_VERSION}). Upgrade the harness (pip install -U) to read it.")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version + 1)
        if step is None:
            raise SchemaError(f"{source} has schema_version {version} and no migration to {version + 1} exists. "
                              "Re-create the record with `harness run`.")
        payload = step(payload)
        version = payload["schema_version"] = version + 1
    return payload


def read_record(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path} is not valid JSON ({err}). Delete it or restore it from version control.") from err
    return upgrade(payload, source=str(path))


def find_records(root: Path) -> list[Path]:
    return sorted(Path(root).glob("runs/**/*.json"))


def load_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [read_record(p) for p in paths]


def to_frame(records: Iterable[Mapping[str, Any]]) -> Any:
    """One row per (run, eval split): identity, library versions, every final metric and throughput."""
    import pandas as pd

    rows = []
    for rec in records:
        base = {"cell": rec["cell"], "task": rec["config"]["task"], "model": rec["config"]["model"],
                "seed": rec["config"]["seed"], "preset": rec["config"]["preset"], "status": rec["status"],
                "transformers": rec["env"]["packages"].get("transformers"),
                "torch": rec["env"]["packages"].get("torch"), "device_class": rec["env"]["device_class"],
                "train_wall_s": rec["timings"].get("train_wall_s"),
                "train_samples_s": rec["timings"].get("train_samples_per_second"),
                "train_tokens_s": rec["timings"].get("train_tokens_per_second"),
                "peak_rss_mib": (rec["timings"].get("peak_rss_bytes") or 0) / 2**20 or None,
                "run_id": rec["run_id"]}
        if not rec["metrics"]:
            rows.append({**base, "split": None})
        for split, values in rec["metrics"].items():
            evals = rec["timings"].get("eval", {}).get(split, {})
            rows.append({**base, "split": split,
                         **{m: values.get(m) for m in rec["task"]["metrics"]},
                         "eval_samples_s": evals.get("samples_per_second"),
                         "eval_tokens_s": evals.get("tokens_per_second")})
    return pd.DataFrame(rows)
