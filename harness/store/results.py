"""Versioned JSON records under results/: atomic writes, identity in paths, migrations, pandas loading.

Layout: <root>/runs/<machine_id>/<env_key>/<cell>-<UTC time>-<run id>.json, one file per run, so shards from many
machines merge by copying folders and concurrent writers (pytest-xdist workers, torchrun ranks) never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.base import jsonfile
from harness.base.jsonfile import JsonKind, SchemaError
from harness.core.record import SCHEMA_VERSION, RunRecord

def update_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added the per-step trajectory; older runs did not record one."""
    return {**record, "trajectory": []}


# update_to_N turns a version N-1 record into version N.
MIGRATIONS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {2: update_to_2}


def record_problems(record: Mapping[str, Any]) -> list[str]:
    """What a record's readers rely on and this one lacks (hand-edited, truncated by another tool, ...)."""
    problems = []
    for key in ("config", "task", "env", "data", "model"):
        if not isinstance(record.get(key), dict):
            problems.append(f"'{key}' is not an object")
    config, task = record.get("config"), record.get("task")
    if isinstance(config, dict):
        if not isinstance(config.get("seed"), int) or isinstance(config.get("seed"), bool):
            problems.append("config.seed is not an integer")
        problems += [f"config.{key} is missing" for key in ("task", "model") if not config.get(key)]
    if isinstance(task, dict) and not isinstance(task.get("primary_metric"), str):
        problems.append("task.primary_metric is not a name")
    if record.get("status") not in ("ok", "failed"):
        problems.append(f"status is {record.get('status')!r}, not 'ok' or 'failed'")
    metrics = record.get("metrics")
    if record.get("status") == "ok" and not metrics:
        problems.append("an 'ok' record without metrics")
    for split, values in (metrics or {}).items() if isinstance(metrics, dict) else [("?", None)]:
        if not isinstance(values, dict):
            problems.append(f"metrics.{split} is not an object")
            continue
        problems += [f"metrics.{split}.{name} is {value!r}, not a number" for name, value in values.items()
                     if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool))]
    return problems


_FIELDS = ("run_id", "cell", "created_at", "status", "config", "task", "env", "data", "model")
RECORD = JsonKind("run record", SCHEMA_VERSION, "re-create it with `harness run`", MIGRATIONS, required=_FIELDS,
                  check=record_problems)


def record_path(root: Path, record: Mapping[str, Any]) -> Path:
    env = record["env"]
    stamp = record["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    return (Path(root) / "runs" / env["machine_id"] / env["env_key"]
            / f"{record['cell']}-{stamp}-{record['run_id'][:8]}.json")


def write_record(record: RunRecord | Mapping[str, Any], root: Path) -> Path:
    payload = record.to_dict() if isinstance(record, RunRecord) else dict(record)
    return jsonfile.write(record_path(root, payload), payload)


def upgrade(payload: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Bring a stored record to SCHEMA_VERSION, or refuse with what to do."""
    return RECORD.upgrade(payload, source=source)


def read_record(path: Path) -> dict[str, Any]:
    return jsonfile.read(path, RECORD)


def find_records(root: Path) -> list[Path]:
    return sorted(Path(root).glob("runs/**/*.json"))


def load_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [read_record(p) for p in paths]


def to_frame(records: Iterable[RunRecord | Mapping[str, Any]]) -> Any:
    """One row per (run, eval split): identity, library versions, every final metric and throughput."""
    import pandas as pd

    rows = []
    for item in records:
        rec = item if isinstance(item, RunRecord) else RunRecord.from_dict(item)
        timings, packages = rec.timings, rec.env.get("packages") or {}
        base = {"cell": rec.cell, "task": rec.task_name, "model": rec.model_name, "seed": rec.seed,
                "preset": rec.config.get("preset"), "status": rec.status,
                "transformers": packages.get("transformers"), "torch": packages.get("torch"),
                "device_class": rec.device_class, "train_wall_s": timings.get("train_wall_s"),
                "train_samples_s": timings.get("train_samples_per_second"),
                "train_tokens_s": timings.get("train_tokens_per_second"),
                "peak_rss_mib": (timings.get("peak_rss_bytes") or 0) / 2**20 or None, "run_id": rec.run_id}
        if not rec.metrics:
            rows.append({**base, "split": None})
        for split, values in rec.metrics.items():
            evals = (timings.get("eval") or {}).get(split, {})
            rows.append({**base, "split": split, **{m: values.get(m) for m in rec.task.get("metrics", [])},
                         "eval_samples_s": evals.get("samples_per_second"),
                         "eval_tokens_s": evals.get("tokens_per_second")})
    return pd.DataFrame(rows)

