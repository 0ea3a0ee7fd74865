"""Nightly series per cell and measure, their changes, and what changed in the environment between two nights.

A series never mixes machines, device classes or settings: its key holds all three, so a night on another machine
starts another series (its first night says so). Values per night are the seeds' values; the series judges their
mean (changepoints.changes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.judging import changepoints
from harness.judging.changepoints import Change
from harness.judging.comparability import JUDGED_CONFIG
from harness.store.history import MEASURES, History

# The smallest change that counts, per measure: metric points, else a ratio - 1.
MIN_EFFECT = {"primary": 0.01, "train_step_s": 0.03, "eval_batch_s": 0.05, "mfu": 0.03, "peak_memory_mib": 0.05}


@dataclass(frozen=True)
class Key:
    device_class: str
    machine_id: str
    group: str
    settings: str  # digest of the judged settings, the task version
    measure: str  # a MEASURES name

    @property
    def cell(self) -> str:
        return f"{self.group} [{self.settings[:6]}]"


@dataclass(frozen=True)
class Point:
    night: str
    order: int  # the night's place in the whole history (0 first)
    values: tuple[float, ...]  # one per seed that produced the measure
    failed: int  # seeds whose run failed
    fingerprints: frozenset[str]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


@dataclass
class Series:
    key: Key
    label: str  # "accuracy", "train s/step", ...
    higher_is_better: bool
    log: bool
    points: list[Point]
    changes: list[Change] = field(default_factory=list)
    changed_env: dict[int, list[str]] = field(default_factory=dict)  # change index -> what changed that night
    new: set[int] = field(default_factory=set)  # confirmed changes the nights up to the one before did not show

    def night_of(self, change: Change) -> Point:
        return self.points[change.at]


def settings_digest(config: str, task_version: object) -> str:
    values = json.loads(config)
    judged = {k: values.get(k) for k in JUDGED_CONFIG}
    return hashlib.sha256(json.dumps([judged, task_version], sort_keys=True, default=str).encode()).hexdigest()[:12]


def env_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words ("transformers 5.23.0 -> 5.24.0", "machine a1 -> b2")."""
    out = []
    old, new = before.get("packages") or {}, after.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            out.append(f"{name} {old.get(name) or '(none)'} -> {new.get(name) or '(none)'}")
    for key, label in (("python", "python"), ("torch_build", "torch build"), ("device", "device"),
                       ("driver", "driver"), ("cpu", "cpu"), ("machine_id", "machine"), ("platform", "platform"),
                       ("harness", "harness commit")):
        if before.get(key) != after.get(key):
            show = (lambda v: str(v)[:10]) if key == "harness" else str
            out.append(f"{label} {show(before.get(key))} -> {show(after.get(key))}")
    return out


def fingerprint_changes(before: frozenset[str], after: frozenset[str],
                        fingerprints: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """env_changes between two nights' fingerprints (several per night: every pair, each change once)."""
    said: list[str] = []
    for a in sorted(before):
        for b in sorted(after):
            said += [c for c in env_changes(fingerprints.get(a, {}), fingerprints.get(b, {})) if c not in said]
    return said


def _label(measure: str, metric: str) -> str:
    return metric if measure == "primary" else {"train_step_s": "train s/step", "eval_batch_s": "eval s/batch",
                                                "mfu": "MFU", "peak_memory_mib": "peak memory MiB"}[measure]


def _values(column: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in column if v is not None and v == v)  # v == v: not NaN


def build(history: History, *, min_effect: Mapping[str, float] = MIN_EFFECT, **detect: Any) -> list[Series]:
    """Every series of the history with its confirmed changes (detect: changepoints.changes' alpha, window, ...)."""
    table = history.records
    if table.empty:
        return []
    pairs = list(zip(table["config"].astype(str), table["task_version"].astype(str)))
    digests = {pair: settings_digest(*pair) for pair in set(pairs)}
    table = table.assign(settings=[digests[pair] for pair in pairs], failed=table["status"].eq("failed"))
    keys = ["device_class", "machine_id", "group", "settings"]
    nightly = table.groupby([*keys, "night_order", "night"], sort=True).agg(
        failed=("failed", "sum"), fingerprints=("fingerprint", frozenset), metric=("metric", "first"),
        higher=("higher_is_better", "first"), **{m: (m, _values) for m in MEASURES}).reset_index()
    found: list[Series] = []
    for (device, machine, group, digest), rows in nightly.groupby(keys, sort=True):
        metric, higher = str(rows["metric"].iloc[0]), bool(rows["higher"].iloc[0])
        nights = list(zip(rows["night"], rows["night_order"], rows["failed"], rows["fingerprints"]))
        for measure, (_, measure_higher, log) in MEASURES.items():
            points = [Point(str(night), int(order), values, int(failed), frozenset(prints))
                      for (night, order, failed, prints), values in zip(nights, rows[measure]) if values or failed]
            if not any(p.values for p in points):
                continue
            series = Series(Key(str(device), str(machine), str(group), digest, measure), _label(measure, metric),
                            higher if measure == "primary" else measure_higher, log, points)
            _detect(series, history.fingerprints, min_effect[measure], detect)
            found.append(series)
    return found


def _detect(series: Series, fingerprints: Mapping[str, Mapping[str, Any]], min_effect: float,
            detect: Mapping[str, Any]) -> None:
    judged = [p for p in series.points if p.values]
    means = [p.mean for p in judged]
    found = changepoints.changes(means, log=series.log, min_effect=min_effect, **detect)
    before = changepoints.changes(means[:-1], log=series.log, min_effect=min_effect, **detect)
    series.new = {i for i, c in enumerate(found) if not c.newest
                  and not any(abs(b.at - c.at) <= 1 and not b.newest for b in before)}
    series.changes = [Change(**{**c.__dict__, "at": series.points.index(judged[c.at])}) for c in found]
    for i, change in enumerate(series.changes):
        before = max((p for p in series.points[:change.at] if p.values), key=lambda p: p.order)
        series.changed_env[i] = fingerprint_changes(before.fingerprints, series.points[change.at].fingerprints,
                                                    fingerprints)


def night_changes(history: History) -> dict[str, list[str]]:
    """night -> what changed in its environment since the previous night on each of its machines."""
    table = history.records
    out: dict[str, list[str]] = {}
    if table.empty:
        return out
    previous: dict[str, frozenset[str]] = {}
    for (order, night), rows in table.groupby(["night_order", "night"], sort=True):
        said: list[str] = []
        for machine, on_machine in rows.groupby("machine_id", sort=True):
            now = frozenset(on_machine["fingerprint"])
            if machine in previous:
                said += [c for c in fingerprint_changes(previous[machine], now, history.fingerprints)
                         if c not in said]
            elif previous:
                said.append(f"first night on machine {machine}")
            previous[machine] = now
        out[str(night)] = said
    return out


def worse_now(series: Sequence[Series]) -> list[tuple[Series, Change]]:
    """Changes for the worse that the newest night confirmed (the history without it did not show them)."""
    return [(s, c) for s in series for i, c in enumerate(s.changes) if i in s.new and c.worse(s.higher_is_better)]
