"""Nights of run records as one pandas table: the query layer under `harness history`.

A night is a folder holding `runs/` (what `harness run --output DIR` and `harness merge --output DIR` write), named
by its path and ordered by its first record's time. The records stay the source of truth; what a history reads
from each (identity, fingerprint, the measures judged over time) is kept in an SQLite file index beside the other
caches, keyed by the file's path, size and modification time, so a later read parses only new or changed files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base.jsonfile import SchemaError
from harness.core.record import RunRecord
from harness.store.results import RECORD

WARMUP_STEPS = 5  # train steps left out of the step time (compilation, allocator and cache warm-up)
INDEX_VERSION = 3  # bump when what row_of extracts changes: older index rows are then made again

TIMED = ("train_step_s", "eval_batch_s", "mfu")  # measures other processes on the machine slow down
# The measures kept per record, with whether higher is better and whether sizes are ratios (judged on a log scale).
MEASURES: Mapping[str, tuple[str, bool, bool]] = {
    "primary": ("the task's primary metric", True, False),
    "train_step_s": ("train seconds per optimizer step (median, warm-up left out)", False, True),
    "eval_batch_s": ("eval seconds per batch (from eval samples/s)", False, True),
    "mfu": ("model FLOPs utilisation of training", True, True),
    "peak_memory_mib": ("peak memory, MiB (GPU allocated, else process RSS)", False, True),
}


@dataclass(frozen=True)
class Night:
    name: str  # the folder's name, or its path below the folder given (its whole path where names repeat)
    root: Path


def nights(paths: Iterable[str | Path]) -> list[Night]:
    """Every night under `paths`: a path holding runs/ is one night, any other folder holds nights below it."""
    found: list[Night] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise SchemaError(f"{item} {what}; pass night folders (each holding runs/, as `harness run --output DIR` "
                              "writes) or a folder of them.")
        roots = [path] if (path / "runs").is_dir() else sorted(p.parent for p in path.glob("**/runs") if p.is_dir())
        if not roots:
            raise SchemaError(f"{item} holds no night: no runs/ folder under it. A night is the folder `harness run "
                              "--output DIR` or `harness merge --output DIR` wrote; pass those folders.")
        found += [Night(str(root.relative_to(path)) if root != path else path.name, root) for root in roots]
    roots = [n.root.resolve() for n in found]
    repeated = sorted({str(r) for r in roots if roots.count(r) > 1})
    if repeated:
        raise SchemaError(f"{', '.join(repeated)} named more than once; pass each night once.")
    names = [n.name for n in found]
    if len(set(names)) < len(names):  # nights of the same name under two folders: told apart by their paths
        found = [Night(str(n.root), n.root) for n in found]
    return found


def fingerprint(env: Mapping[str, Any]) -> dict[str, Any]:
    """What a night's environment difference is told in: packages, Python, torch build, device, machine."""
    device = env.get("device") or {}
    return {"packages": {k: v for k, v in (env.get("packages") or {}).items() if v},
            "python": env.get("python"), "platform": env.get("platform"),
            "torch_build": env.get("torch_build"), "device": device.get("name"), "driver": device.get("driver"),
            "cpu": (env.get("cpu") or {}).get("model"), "machine_id": env.get("machine_id"),
            "harness": (env.get("harness") or {}).get("git_commit")}


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def row_of(record: RunRecord) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One record's row (identity and measures) and what many rows share, by kind ("fingerprint": its environment
    fingerprint; "config": its settings without the seed), each kept once under the digest the row names."""
    timings = record.timings
    steps = record.step_seconds[WARMUP_STEPS:]
    evals = next(iter((timings.get("eval") or {}).values()), {}) if record.metrics else {}
    eval_rate = evals.get("samples_per_second")
    batch = record.config.get("eval_batch_size")
    memory = timings.get("cuda_max_allocated_bytes") or timings.get("peak_rss_bytes")
    env = fingerprint(record.env)
    config = {k: v for k, v in record.config.items() if k != "seed"}
    return {"created_at": record.created_at, "status": record.status, "cell": record.cell, "group": record.group,
            "seed": record.seed, "machine_id": str(record.env.get("machine_id")), "device_class": record.device_class,
            "env_key": record.env_key, "fingerprint": _digest(env), "config": _digest(config),
            "task_version": record.task.get("version"), "metric": record.primary_metric,
            "higher_is_better": record.higher_is_better,
            "primary": record.primary() if record.ok else None,
            "train_step_s": statistics.median(steps) if record.ok and steps else None,
            "eval_batch_s": batch / eval_rate if record.ok and eval_rate and batch else None,
            "mfu": record.mfu if record.ok else None,
            "peak_memory_mib": memory / 2**20 if record.ok and memory else None,
            "busy_cores": (timings.get("machine") or {}).get("busy_cores")}, {"fingerprint": env, "config": config}


class Index:
    """path -> (size, mtime) -> the row and fingerprint read from it, in one SQLite file (a cache: delete it freely)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(":memory:" if path is None else path)
        self.db.execute("CREATE TABLE IF NOT EXISTS rows (path TEXT PRIMARY KEY, version INT, size INT, "
                        "mtime INT, row TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS shared (kind TEXT, id TEXT, value TEXT, PRIMARY KEY (kind, id))")

    def known(self) -> dict[str, tuple[int, int, int, str]]:
        return {path: (version, size, mtime, row) for path, version, size, mtime, row
                in self.db.execute("SELECT path, version, size, mtime, row FROM rows")}

    def shared(self, kind: str) -> dict[str, dict[str, Any]]:
        return {key: json.loads(value) for key, value in
                self.db.execute("SELECT id, value FROM shared WHERE kind = ?", (kind,))}

    def keep(self, made: list[tuple[str, int, int, str]], shared: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)",
                                [(p, INDEX_VERSION, s, m, r) for p, s, m, r in made])
            self.db.executemany("INSERT OR IGNORE INTO shared VALUES (?, ?, ?)",
                                [(kind, key, json.dumps(value, sort_keys=True)) for kind, key, value in shared])


def _files(root: Path) -> Iterable[os.DirEntry[str]]:
    stack = [root / "runs"]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.name.endswith(".json") and not entry.name.startswith("."):
                    yield entry


def _read(path: str) -> RunRecord | None:
    """The record in a file; None for the other files a records folder may hold (verdicts, measurements)."""
    from harness.store.recordsets import kind_of

    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"{path} cannot be read as JSON ({err}); move it out of the night or restore it.") from None
    if kind_of(payload) != "record":
        return None
    return RunRecord.from_dict(RECORD.upgrade(payload, source=path))


@dataclass
class History:
    records: Any  # pandas DataFrame: a row per record, night and night_order first
    fingerprints: dict[str, dict[str, Any]]  # digest -> fingerprint()
    configs: dict[str, dict[str, Any]]  # digest -> a run's config without its seed
    parsed: int  # record files read this time (the rest came from the index)


def load(found: Iterable[Night], *, index: Path | None) -> History:
    """Every record of every night, through the index at `index` (None: no file index, every file parsed)."""
    import pandas as pd

    cache = Index(index)
    known = cache.known()
    rows: list[dict[str, Any]] = []
    made: list[tuple[str, int, int, str]] = []
    shared: dict[tuple[str, str], dict[str, Any]] = {}
    for night in found:
        for entry in _files(night.root):
            stat = entry.stat()
            path = os.path.abspath(entry.path)
            hit = known.get(path)
            if hit and hit[:3] == (INDEX_VERSION, stat.st_size, stat.st_mtime_ns):
                row = json.loads(hit[3])
            else:
                record = _read(path)
                row, parts = row_of(record) if record is not None else ({}, {})
                shared.update({(kind, row[kind]): value for kind, value in parts.items()})
                made.append((path, stat.st_size, stat.st_mtime_ns, json.dumps(row)))
            if row:
                rows.append({"night": night.name, "path": path, **row})
    cache.keep(made, [(kind, key, value) for (kind, key), value in shared.items()])
    table = pd.DataFrame(rows)
    if not table.empty:
        started = table.groupby("night")["created_at"].min().sort_values(kind="stable")
        order = {name: i for i, name in enumerate(started.index)}
        table.insert(1, "night_order", table["night"].map(order))
        table = table.sort_values(["night_order", "group", "seed"], kind="stable").reset_index(drop=True)
    return History(table, cache.shared("fingerprint"), cache.shared("config"), parsed=len(made))
