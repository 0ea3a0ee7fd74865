"""Synthetic nightly histories, to show what `harness history` finds and what it does not.

Each night is written as real run records (copies of template records with their timings and primary metric
redrawn), so a synthetic history goes through the same reading, indexing and judging as a real one. The noise is
measured, not guessed: `measure_noise` reads it off a real history whose nights ran the same software.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.record import RunRecord
from harness.machine.env import env_key
from harness.store.history import History
from harness.store.results import record_path


@dataclass(frozen=True)
class Noise:
    """Standard deviations, log scale for timings and memory, metric units for the metric."""

    step_night: float  # a cell's train (and eval) step time from night to night, same software, same seed
    step_seed: float  # between the seeds of one night, beyond the night's shared part
    metric_seed: float  # the primary metric between seeds (fixed per seed: seeds are fixed from night to night)
    metric_night: float  # the primary metric from night to night, same seed and software (0 where deterministic)
    memory: float  # peak memory from run to run

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Plant:
    """A change planted from `night` (1-based) on: a ratio - 1 for timings, points for the metric."""

    night: int
    group: str  # the cell group it is planted in, or "*": every cell
    measure: str  # "train_step_s" or "primary"
    size: float
    packages: Mapping[str, str] = field(default_factory=dict)  # what the night's environment changed to


def _pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """The pooled standard deviation of several small samples (each about its own mean)."""
    squares = sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return math.sqrt(squares / dof) if dof else 0.0


def measure_noise(history: History) -> Noise:
    """Noise of a real history whose nights ran one software stack on one machine (reruns)."""
    table = history.records[history.records["status"] == "ok"]
    if table["env_key"].nunique() != 1 or table["machine_id"].nunique() != 1:
        raise ValueError("measure noise on reruns: nights of one environment on one machine")
    step_night, step_seed, metric_night, metric_seed, memory = [], [], [], [], []
    for _, cell in table.groupby("group"):
        log_steps = cell.assign(log=np.log(cell["train_step_s"].astype(float)))
        nightly = log_steps.groupby("night")["log"].mean()
        step_night.append(list(nightly))
        step_seed += [list(g) for _, g in log_steps.groupby("night")["log"]]
        metric_night += [list(g) for _, g in cell.groupby("seed")["primary"]]
        metric_seed += [list(g) for _, g in cell.groupby("night")["primary"]]
        memory += [list(np.log(g.astype(float))) for _, g in cell.groupby("seed")["peak_memory_mib"]]
    seeds = table["seed"].nunique()
    # a night's mean varies by step_night**2 + step_seed**2 / seeds: take the seeds' part out
    night = math.sqrt(max(_pooled_sd(step_night) ** 2 - _pooled_sd(step_seed) ** 2 / seeds, 0.0))
    return Noise(step_night=night, step_seed=_pooled_sd(step_seed), metric_seed=_pooled_sd(metric_seed),
                 metric_night=_pooled_sd(metric_night), memory=_pooled_sd(memory))


def templates(records: Sequence[RunRecord], copies: int = 1) -> list[RunRecord]:
    """One ok record per cell group, `copies` times over (copy k > 0 under model "<model>-copy<k>")."""
    first: dict[str, RunRecord] = {}
    for record in records:
        if record.ok and record.step_seconds:
            first.setdefault(record.group, record)
    out = []
    for k in range(copies):
        for record in first.values():
            clone = copy.deepcopy(record)
            if k:
                clone.config["model"] = f"{record.model_name}-copy{k}"
                clone.cell = f"{clone.task_name}-{clone.config['model']}-s{clone.seed}"
            out.append(clone)
    return out


def write_history(root: Path, cells: Sequence[RunRecord], *, nights: int, seeds: int, noise: Noise,
                  plants: Sequence[Plant] = (), rng: int = 0, start: str = "2026-01-01T01:00:00+00:00") -> list[Path]:
    """nights x cells x seeds records under root/night-NN/ (one folder per night); the night folders."""
    draw = np.random.default_rng(rng)
    first = datetime.fromisoformat(start)
    seed_offsets = {(c.group, s): draw.normal(0, noise.metric_seed) for c in cells for s in range(seeds)}
    packages = dict(cells[0].env.get("packages") or {})
    texts = {cell.group: json.dumps(cell.to_dict()) for cell in cells}  # decoding a copy beats deep-copying one
    folders = []
    for night in range(1, nights + 1):
        for plant in plants:
            if plant.night == night:
                packages.update(plant.packages)
        folder = root / f"night-{night:02d}"
        when = first + timedelta(days=night - 1)
        for c_index, cell in enumerate(cells):
            shared = draw.normal(0, noise.step_night)
            for seed in range(seeds):
                machine = math.exp(shared + draw.normal(0, noise.step_seed))  # the night's and the run's noise
                step = machine
                metric = seed_offsets[(cell.group, seed)] + draw.normal(0, noise.metric_night)
                for plant in plants:
                    if plant.group in ("*", cell.group) and night >= plant.night:
                        if plant.measure == "train_step_s":
                            step *= 1 + plant.size
                        else:
                            metric += plant.size
                made = when + timedelta(minutes=c_index * seeds + seed)
                memory = math.exp(draw.normal(0, noise.memory))
                record = _redrawn(json.loads(texts[cell.group]), seed, step, machine, metric, memory, packages, made,
                                  draw)
                path = record_path(folder, record)  # written plainly: synthetic data need no atomic write
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1), encoding="utf-8")  # as the harness lays records out
        folders.append(folder)
    return folders


def _redrawn(record: dict[str, Any], seed: int, step: float, eval_step: float, metric: float, memory: float,
             packages: Mapping[str, str], made: datetime, draw: np.random.Generator) -> dict[str, Any]:
    """The record of a cell (a fresh copy, changed in place) with train steps `step` times as long, eval batches
    `eval_step` times, the primary metric moved by `metric` and peak memory `memory` times as large."""
    group = RunRecord.from_dict(record).group
    record["run_id"] = uuid.UUID(bytes=draw.bytes(16)).hex
    record["created_at"] = made.astimezone(timezone.utc).isoformat(timespec="seconds")
    record["config"]["seed"] = seed
    record["cell"] = f"{group}-s{seed}"
    env = record["env"]
    env["packages"] = dict(packages)
    env["env_key"] = env_key(dict(packages))
    timings = record["timings"]
    timings["train_step_seconds"] = [round(s * step, 6) for s in timings["train_step_seconds"]]
    for split in (timings.get("eval") or {}).values():
        if split.get("samples_per_second"):
            split["samples_per_second"] /= eval_step
    if (timings.get("model_flops") or {}).get("mfu"):
        timings["model_flops"]["mfu"] /= step
    machine = timings.setdefault("machine", {})
    machine["busy_cores"] = 0.02  # a quiet machine (what the reruns the noise was measured on saw: 0.01-0.06)
    if machine.get("reference_seconds"):  # the machine-speed reference moves with the night's machine noise only
        reference = float(np.median(machine["reference_seconds"])) * eval_step
        machine["reference_seconds"] = [reference, reference]
    if timings.get("peak_rss_bytes"):
        timings["peak_rss_bytes"] = int(timings["peak_rss_bytes"] * memory)
    record["predictions"] = {}  # the metric moves without them: judges must not pair on the template's examples
    split = next(iter(record["metrics"]))
    name = record["task"]["primary_metric"]
    value = record["metrics"][split][name] + metric
    record["metrics"][split][name] = min(max(value, -1.0), 1.0)
    return record
