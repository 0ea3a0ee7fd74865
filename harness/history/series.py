"""Nightly series per cell and measure, their changes, and what changed in the environment between two nights.

A series never mixes machines, device classes or settings: its key holds all three, so a night on another machine
starts another series (its first night says so). Values per night are the seeds' values; the series judges their
mean (changepoints.changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.judging import changepoints
from harness.judging.changepoints import Change
from harness.judging.comparability import JUDGED_CONFIG
from harness.judging.judge import JudgeSettings
from harness.store.history import MEASURES, TIMED, History

ALL_CELLS = "all cells"  # the group of a machine's series over every cell: a change the whole stack brought
FOLD_NIGHTS = 7  # a cell's change this close to an all-cells change, the same way, is that change (a cell
# alone, in noise like this machine's, places a change a few nights off: the all-cells night is the better estimate)
ALL_CELLS_FROM = 3  # cells a machine needs for its all-cells series (its nightly value is their median)
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
        return self.group if self.group == ALL_CELLS else f"{self.group} [{self.settings[:6]}]"


@dataclass(frozen=True)
class Point:
    night: str
    order: int  # the night's place in the whole history (0 first)
    values: tuple[float, ...]  # one per seed that produced the measure
    failed: int  # seeds whose run failed
    fingerprints: frozenset[str]
    busy: int = 0  # runs left out of a timing: other processes used the machine (JudgeSettings.busy_tolerance)
    centre: float | None = None  # what the night is judged on, where not the mean of `values`

    @property
    def mean(self) -> float:
        return self.centre if self.centre is not None else sum(self.values) / len(self.values)


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
    # a cell's change that is one all-cells change seen in this cell: index -> that change's night
    folded: dict[int, str] = field(default_factory=dict)
    shown_in: dict[int, list[str]] = field(default_factory=dict)  # all cells: change index -> the cells showing it

    @property
    def everywhere(self) -> bool:
        return self.key.group == ALL_CELLS


def settings_digest(config: Mapping[str, Any], task_version: object) -> str:
    """The settings a series is kept apart by: those the quality judges require equal, and the task's version."""
    judged = {k: config.get(k) for k in JUDGED_CONFIG}
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


def _runs(boundaries: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(start, end) of each run of equal labels, from the positions where a new one starts."""
    starts = [0, *boundaries.tolist()]
    return list(zip(starts, [*starts[1:], size]))


def build(history: History, *, min_effect: Mapping[str, float] = MIN_EFFECT, **detect: Any) -> list[Series]:
    """Every series of the history with its confirmed changes (detect: changepoints.changes' alpha, window, ...)."""
    table = history.records
    if table.empty:
        return []
    pairs = list(zip(table["config"], table["task_version"].astype(str)))
    digests = {(config, version): settings_digest(history.configs.get(config, {}), version)
               for config, version in set(pairs)}
    busy = table["busy_cores"].astype(float) > JudgeSettings().busy_tolerance
    table = table.assign(settings=[digests[pair] for pair in pairs], failed=table["status"].eq("failed"), busy=busy)
    table.loc[busy, list(TIMED)] = None
    keys = ["device_class", "machine_id", "group", "settings"]
    table = table.sort_values([*keys, "night_order", "seed"], kind="stable").reset_index(drop=True)
    newest = int(table["night_order"].max())
    # rows of one series, and of one night in it, are contiguous now: slice them instead of grouping in Python
    series_id = table.groupby(keys, sort=False).ngroup().to_numpy()
    night_id = table.groupby([*keys, "night_order"], sort=False).ngroup().to_numpy()
    night_runs = _runs(np.flatnonzero(np.diff(night_id)) + 1, len(table))
    series_of_night = series_id[[start for start, _ in night_runs]]
    columns = {m: table[m].to_numpy(dtype=float) for m in MEASURES}
    failed, busy_runs = table["failed"].to_numpy(), table["busy"].to_numpy()
    prints, names, orders = table["fingerprint"].to_numpy(), table["night"].to_numpy(), table["night_order"].to_numpy()
    found: list[Series] = []
    for first, last in _runs(np.flatnonzero(np.diff(series_of_night)) + 1, len(night_runs)):
        spans = night_runs[first:last]
        row = table.iloc[spans[0][0]]
        nights = [(str(names[a]), int(orders[a]), int(failed[a:b].sum()), frozenset(prints[a:b]),
                   int(busy_runs[a:b].sum())) for a, b in spans]
        for measure, (_, measure_higher, log) in MEASURES.items():
            values = columns[measure]
            points = []
            for (a, b), (night, order, failures, fingerprints, busy_count) in zip(spans, nights):
                kept = tuple(float(v) for v in values[a:b] if v == v)  # v == v: not NaN
                busy_count = busy_count if measure in TIMED else 0
                if kept or failures or busy_count:
                    points.append(Point(night, order, kept, failures, fingerprints, busy_count))
            if not any(p.values for p in points):
                continue
            key = Key(str(row["device_class"]), str(row["machine_id"]), str(row["group"]), str(row["settings"]),
                      measure)
            series = Series(key, _label(measure, str(row["metric"])),
                            bool(row["higher_is_better"]) if measure == "primary" else measure_higher, log, points)
            _detect(series, history.fingerprints, min_effect[measure], newest, detect)
            found.append(series)
    everywhere = [_all_cells(members, history.fingerprints, min_effect[members[0].key.measure], newest, detect)
                  for members in _by_machine(found)]
    return [s for s in everywhere if s is not None] + found


def _by_machine(found: Sequence[Series]) -> list[list[Series]]:
    groups: dict[tuple[str, str, str], list[Series]] = {}
    for one in found:
        groups.setdefault((one.key.device_class, one.key.machine_id, one.key.measure), []).append(one)
    return [members for members in groups.values() if len(members) >= ALL_CELLS_FROM]


def _all_cells(members: Sequence[Series], fingerprints: Mapping[str, Mapping[str, Any]], min_effect: float,
               newest: int, detect: Mapping[str, Any]) -> Series | None:
    """One machine's measure over all its cells: each night the median over the cells of each cell's value against
    the cell's own median over the nights (a ratio on the log scale, else a difference). A change the whole stack
    brought (a slower torch, a different tokenizer) stands out of noise each cell alone cannot rise above; one cell's
    change does not move the median. Its changes take in the cells' own changes of the same direction within
    FOLD_NIGHTS nights."""
    first = members[0]
    if len({m.higher_is_better for m in members}) > 1:
        return None
    nights: dict[int, tuple[str, list[float], set[str]]] = {}
    for member in members:
        values = [(p, p.mean) for p in member.points if p.values]
        centre = float(np.median([math.log(v) if member.log else v for _, v in values]))
        for point, value in values:
            gap = math.exp(math.log(value) - centre) if member.log else value - centre
            night = nights.setdefault(point.order, (point.night, [], set()))
            night[1].append(gap)
            night[2].update(point.fingerprints)
    points = [Point(night, order, tuple(gaps), 0, frozenset(prints), centre=float(np.median(gaps)))
              for order, (night, gaps, prints) in sorted(nights.items())]
    label = (f"median {first.label} / the cell's usual" if first.log else "median primary metric - the cell's usual")
    series = Series(Key(first.key.device_class, first.key.machine_id, ALL_CELLS, "", first.key.measure), label,
                    first.higher_is_better, first.log, points)
    _detect(series, fingerprints, min_effect, newest, detect)
    for i, change in enumerate(series.changes):
        if change.newest:
            continue
        order, rising = series.points[change.at].order, change.size > 0
        for member in members:
            for j, own in enumerate(member.changes):
                if abs(member.points[own.at].order - order) <= FOLD_NIGHTS and (own.size > 0) == rising:
                    member.folded[j] = series.points[change.at].night
                    series.shown_in.setdefault(i, []).append(member.key.cell)
    return series


def _detect(series: Series, fingerprints: Mapping[str, Mapping[str, Any]], min_effect: float, newest: int,
            detect: Mapping[str, Any]) -> None:
    judged = [p for p in series.points if p.values]
    means = [p.mean for p in judged]
    found = changepoints.changes(means, log=series.log, min_effect=min_effect, **detect)
    if judged[-1].order == newest:  # what tonight confirmed: changes the nights up to yesterday did not show
        known = [c for c in changepoints.changes(means[:-1], log=series.log, min_effect=min_effect, **detect)
                 if not c.newest]
        series.new = {i for i, c in enumerate(found) if not c.newest and not any(abs(k.at - c.at) <= 1 for k in known)}
    series.changes = [dataclasses.replace(c, at=series.points.index(judged[c.at])) for c in found]
    for i, change in enumerate(series.changes):
        last = max((p for p in series.points[:change.at] if p.values), key=lambda p: p.order)
        series.changed_env[i] = fingerprint_changes(last.fingerprints, series.points[change.at].fingerprints,
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


def failed_now(series: Sequence[Series]) -> list[Series]:
    """Cells (their primary-metric series) with a seed that failed on the newest night and none on the night before."""
    newest = max((p.order for s in series for p in s.points), default=-1)
    return [s for s in series if s.key.measure == "primary" and len(s.points) > 1
            and s.points[-1].order == newest and s.points[-1].failed and not s.points[-2].failed]


def worse_now(series: Sequence[Series]) -> list[tuple[Series, Change]]:
    """Changes for the worse that the newest night confirmed (the history without it did not show them), an
    all-cells change once rather than in each cell."""
    return [(s, c) for s in series for i, c in enumerate(s.changes)
            if i in s.new and i not in s.folded and c.worse(s.higher_is_better)]
