"""When two runs or two measurements may be judged against each other, and why not otherwise. Pure functions."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from harness.core.config import RunConfig
from harness.core.record import RunRecord
from harness.core.evidence import Measurement, data_identity

# Config fields that do not change what a cell learns (what names the cell, where its data sit and which device
# runs it, evaluation batching, checkpointing); every other field, one added later too, does: a baseline made with
# other values is not comparable. world_size is resolved at run time, not a RunConfig field.
_NOT_QUALITY = ("model", "task", "seed", "device", "source", "glue_dir", "eval_accumulation_steps", "save_steps",
                "checkpoint_dir", "resume_from_checkpoint", "trajectory_steps", "name")
JUDGED_CONFIG = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _NOT_QUALITY) + ("world_size",)
# Config fields a throughput number is not judged on: what names the cell or where its data sit (group, data identity
# and device class are matched apart), and what a bench replaces (harness.core.build.bench_overrides: a fixed number
# of steps, nothing evaluated or saved; no resume, no trajectory).
_NOT_THROUGHPUT = ("model", "task", "seed", "preset", "name", "data_seed", "source", "glue_dir", "device", "epochs",
                   "evals_per_epoch", "save_steps", "checkpoint_dir", "resume_from_checkpoint", "trajectory_steps")
# Judged where both contexts hold them: contexts written before the whole config was kept lack them, and their
# RunConfig default (None: the preset's) is not what those benches ran with.
_THROUGHPUT_IF_RECORDED = ("learning_rate", "weight_decay", "warmup_ratio", "max_eval_samples")
# Every other field, one added later too. Missing from an older context means the default, which is what ran: the
# benches ignored the Trainer settings until they built through harness.core.build.
THROUGHPUT_CONFIG = tuple(f.name for f in dataclasses.fields(RunConfig)
                          if f.name not in _NOT_THROUGHPUT + _THROUGHPUT_IF_RECORDED) + ("world_size",)
# A key missing from a stored config (written before the field existed) holds the field's default: what ran then
# (world_size is resolved at run time, not a RunConfig field: runs before torchrun support were single processes).
_DEFAULTS = {**{f.name: f.default for f in dataclasses.fields(RunConfig) if f.default is not dataclasses.MISSING},
             "world_size": 1}
def config_differences(baseline: Mapping[str, Any], now: Mapping[str, Any],
                       keys: Iterable[str] = JUDGED_CONFIG) -> list[str]:
    def value(config: Mapping[str, Any], key: str) -> Any:
        return config.get(key, _DEFAULTS.get(key))

    return [f"{k} {value(baseline, k)!r} in the baseline, {value(now, k)!r} now" for k in keys
            if value(baseline, k) != value(now, k)]


def why_not_comparable(baseline: RunRecord, record: RunRecord, *, hint: str) -> str | None:
    """None when `record` may be judged against `baseline` (two run records of the same cell group)."""
    if not record.ok:
        return f"this run failed: {record.error}"
    if baseline.task.get("version") != record.task.get("version"):
        return (f"task {record.task_name} is version {record.task.get('version')} now, "
                f"{baseline.task.get('version')} in the baseline; {hint}")
    differences = config_differences(baseline.config, record.config)
    if differences:
        return "settings differ: " + "; ".join(differences)
    base_data, now_data = data_identity(baseline.data), data_identity(record.data)
    if base_data != now_data:
        changed = sorted(k for k in set(base_data) | set(now_data) if base_data.get(k) != now_data.get(k))
        return f"the data differ from the baseline's ({', '.join(changed)}: other files, rows or subset)"
    return None


def pairable(baseline: RunRecord, record: RunRecord) -> str | None:
    """None when per-example comparison is meaningful (same checkpoint weights; seeds matched by the caller)."""
    base_w, now_w = baseline.model.get("weights_sha256"), record.model.get("weights_sha256")
    if base_w and now_w and base_w != now_w:
        return "checkpoint weights differ from the baseline's: unpaired comparison"
    return None


def throughput_why_not(baseline: Measurement, now: Measurement) -> str | None:
    base_config, now_config = baseline.context["config"], now.context["config"]
    recorded = tuple(k for k in _THROUGHPUT_IF_RECORDED if k in base_config and k in now_config)
    differences = config_differences(base_config, now_config, THROUGHPUT_CONFIG + recorded)
    if differences:
        return "settings differ: " + "; ".join(differences)
    base_model, now_model = baseline.context.get("model", {}), now.context.get("model", {})
    if base_model.get("num_parameters") != now_model.get("num_parameters"):
        return (f"the model has {now_model.get('num_parameters')} parameters now, "
                f"{base_model.get('num_parameters')} in the baseline")
    return None


def machine_drift(baseline: Mapping[str, Any], now: Mapping[str, Any], *, tolerance: float,
                  busy_tolerance: float = math.inf) -> str | None:
    """Why the machine was not in the baseline's state, or None: other processes' CPU use differs (a neighbour's
    torch job slows ours by 10-25% while a small numpy reference barely moves: measured here), or the fixed
    reference workload runs at another speed or unsteadily (frequency, throttling, noisy host)."""
    busy_base, busy_now = baseline.get("busy_cores"), now.get("busy_cores")
    if busy_base is not None and busy_now is not None and abs(busy_now - busy_base) > busy_tolerance:
        return (f"machine busier or quieter than at baseline: other processes used {busy_now:.2f} CPU cores while "
                f"measuring, {busy_base:.2f} then (tolerance ±{busy_tolerance:g}); rerun on a quiet machine")
    base_ref, now_ref = baseline.get("reference_seconds") or [], now.get("reference_seconds") or []
    if not base_ref or not now_ref:
        return None
    for name, values in (("now", now_ref), ("at baseline", base_ref)):
        ordered = sorted(values)
        if len(ordered) >= 5:  # one transient blip at either end (an interrupt) is not an unsteady machine
            ordered = ordered[1:-1]
        spread = ordered[-1] / ordered[0] - 1
        if spread > 2 * tolerance:
            return (f"machine speed unsteady while measuring {name}: a fixed reference workload varied by "
                    f"{spread:.0%}; rerun on a quiet machine")
    drift = statistics.median(now_ref) / statistics.median(base_ref) - 1
    if abs(drift) > tolerance:
        return (f"machine runs at another speed than at baseline: a fixed reference workload is {drift:+.0%} "
                f"slower (tolerance ±{tolerance:.0%}); rerun on a quiet machine or re-measure the baseline")
    return None
