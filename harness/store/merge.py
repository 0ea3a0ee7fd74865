"""Combine record folders (shards, machines, xdist workers) into one result set, each run exactly once.

Identity is in the content, not in where a file was found: a run record is its `run_id` and goes to
runs/<machine>/<env>/<cell>-<time>-<run id>.json (results.record_path); a suite's throughput measurement goes to
throughput/<machine>/<env>/<its file name>. The same identity twice with equal content is one file; with different
content it is an error naming both files, and nothing is written. Verdict tables, baselines and contract snapshots
found beside the records are not results of a run and are left out (and counted).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.base import jsonfile
from harness.store.recordsets import MEASUREMENT, expand, kind_of
from harness.store.results import RECORD, record_path


class MergeConflict(HarnessError):
    """One identity (run id, measurement) with two different contents."""


@dataclass(frozen=True)
class Item:
    identity: str  # "run <run_id>" or "measurement <relative path>"
    relpath: Path  # where it goes under the output root
    payload: dict[str, Any]  # as stored (not migrated: merging keeps files as they are)
    source: Path


@dataclass
class Merged:
    items: dict[str, Item] = field(default_factory=dict)  # identity -> the first file that had it
    duplicates: int = 0  # files whose identity and content were already seen
    left_out: list[Path] = field(default_factory=list)  # JSON files that are not run results

    @property
    def runs(self) -> int:
        return sum(i.identity.startswith("run ") for i in self.items.values())

    @property
    def measurements(self) -> int:
        return len(self.items) - self.runs


def classify(payload: Any, source: Path) -> Item | None:
    """The item a stored file holds, or None when it is no run result; SchemaError for a record of a schema
    version this harness cannot read (so nothing unreadable is carried into the merged set)."""
    kind = kind_of(payload)
    if kind == "record":
        RECORD.upgrade(dict(payload), source=str(source))
        try:
            relpath = record_path(Path(), payload)
        except (KeyError, TypeError, AttributeError):
            raise jsonfile.SchemaError(f"{source} is a run record without env.machine_id, env.env_key or created_at, "
                                       "which name its place; move it out of the folder or re-create it with "
                                       "`harness run`.") from None
        return Item(f"run {payload['run_id']}", relpath, payload, source)
    if kind == "measurement":
        MEASUREMENT.upgrade(dict(payload), source=str(source))
        env = (payload.get("context") or {}).get("env") or {}
        relpath = Path("throughput", str(env.get("machine_id", "unknown")), str(env.get("env_key", "unknown")),
                       source.name)
        return Item(f"measurement {relpath.as_posix()}", relpath, payload, source)
    return None


def collect(sources: Iterable[str | Path]) -> Merged:
    """Every run record and measurement under `sources`, once each; MergeConflict on a conflicting duplicate."""
    merged = Merged()
    taken: dict[Path, str] = {}  # relative path -> identity, so two identities never share a file
    read: set[Path] = set()
    for path in expand(sources):
        if path.resolve() in read:  # named twice (a folder and its subfolder, or --output among the inputs)
            continue
        read.add(path.resolve())
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise jsonfile.SchemaError(f"{path} cannot be read as JSON ({err}); move it out of the folder or restore "
                                       "it, then merge again.") from None
        item = classify(payload, path)
        if item is None:
            merged.left_out.append(path)
            continue
        seen = merged.items.get(item.identity)
        if seen is not None:
            if seen.payload != item.payload:
                raise MergeConflict(f"{item.identity} is in two files with different content: {seen.source} and "
                                    f"{item.source}. An identity names one result, so one file was changed or "
                                    "damaged: move the wrong one out of its folder and merge again.")
            merged.duplicates += 1
            continue
        other = taken.get(item.relpath)
        if other is not None:
            raise MergeConflict(f"{item.source} and {merged.items[other].source} would both be written to "
                                f"{item.relpath} ({item.identity}, {other}); rename one of them and merge again.")
        taken[item.relpath] = item.identity
        merged.items[item.identity] = item
    return merged


def merge(sources: Sequence[str | Path], output: str | Path) -> tuple[Merged, list[Path]]:
    """Write every item of `sources` under `output` (whose own records take part, so a second merge into the same
    folder adds only what is new). Returns what was found and the files written; nothing is written on a conflict."""
    root = Path(output)
    if root.exists() and not root.is_dir():
        raise HarnessError(f"--output {root} is a file, not a folder; pass a folder (it is created if missing).")
    merged = collect([root, *sources] if root.is_dir() else sources)
    if not merged.items:
        raise HarnessError(f"found no run records or throughput measurements under {', '.join(map(str, sources))}; "
                           "pass the folders that `harness run --output` or `pytest --harness-record-dir` wrote.")
    written: list[Path] = []
    try:
        for item in merged.items.values():
            target = root / item.relpath
            if target.resolve() == item.source.resolve():
                continue  # already in place
            try:
                written.append(jsonfile.write(target, item.payload))
            except OSError as err:
                raise HarnessError(f"could not write {target}: {err}; {len(written)} file(s) were written before "
                                   "it, none half-written. Free space or pass an --output folder you can write to, "
                                   "and merge again (what is there is kept).") from None
    except KeyboardInterrupt:
        raise MergeInterrupted(len(written), len(merged.items), root) from None
    return merged, written


class MergeInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while writing: what was written is whole (atomic writes), the rest is not there."""

    def __init__(self, written: int, total: int, root: Path) -> None:
        super().__init__(f"interrupted after writing {written} of {total} file(s) to {root}; none is half-written. "
                         "Run the same merge again to finish: what is there already is kept.")
