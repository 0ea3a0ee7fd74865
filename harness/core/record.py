"""The run record: what one fine-tuning cell produced, with full provenance. Schema documented key by key.

Records are plain JSON so that records from other library versions, machines and shards merge by concatenation
and compare side by side. Bump SCHEMA_VERSION on any incompatible change and add a migration in results.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.core.config import precision_suffix

SCHEMA_VERSION = 2  # 2: + trajectory


@dataclass
class RunRecord:
    schema_version: int  # of this layout; readers refuse unknown versions (results.py)
    run_id: str  # unique per run: uuid4 hex
    cell: str  # matrix cell id "<task>-<model>-s<seed>", e.g. "mrpc-minilm-s0"
    created_at: str  # UTC ISO-8601 time the run finished
    status: str  # "ok" or "failed"
    error: str | None  # the failure message when status == "failed"
    config: dict[str, Any]  # the full RunConfig (preset applied) that produced this run, plus what it resolved to:
    # resolved_device, resolved_optim, resolved_mixed_precision ("no", "bf16", "fp16": the Trainer's autocast) and
    # world_size (processes that trained together under torchrun, each with train_batch_size; 1 alone; absent before)
    task: dict[str, Any]  # the TaskSpec used: name, version, metrics, primary_metric, higher_is_better, labels
    env: dict[str, Any]  # harness.machine.env.fingerprint(): packages, device, machine_id, device_class, env_key, git
    data: dict[str, Any]  # data provenance: source, files + sha256 or hub revision, subsets; rows and tokens per split
    model: dict[str, Any]  # checkpoint provenance: spec, path, revision, weights sha256, parameter count
    epochs: list[dict[str, Any]] = field(default_factory=list)  # each eval in training: {"epoch", "step", "<split>": metrics}
    # training loss at the Trainer's logging cadence: {"step", "epoch", "loss"}, each the mean since the previous one
    # (as the Trainer logs it without the trajectory's extra logs)
    train_loss: list[dict[str, float]] = field(default_factory=list)
    # the first RunConfig.trajectory_steps optimizer steps, one entry each: {"step", "loss", "grad_norm" (before
    # clipping; None where the Trainer logs none: 4.x with max_grad_norm 0), "learning_rate" (the one applied)}
    trajectory: list[dict[str, float | None]] = field(default_factory=list)
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)  # final predict() metrics per eval split
    predict_contract: dict[str, Any] = field(default_factory=dict)  # per split: shapes, dtypes, metric keys of predict()
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split: idx, predictions, labels, order
    timings: dict[str, Any] = field(default_factory=dict)  # wall seconds, samples/s, tokens/s, step times, memory,
    # "model_flops" (harness.machine.flops.summary; absent before MFU was recorded): {"formula_version", "dtype" (of
    # the matrix products: fp32, tf32, fp16, bf16), "devices", "per_epoch" and "train" (model FLOPs: 3 x forward over
    # the non-padding tokens), "per_second" (over the optimizer steps' seconds), "mfu" (per_second over the peak of
    # all devices), "note" (why a value is None)},
    # and "machine": {"reference_seconds": machine speed before/after train(), "busy_cores": others' CPU use,
    # "peak": the device's peak FLOP/s for that dtype: {"source" ("datasheet" on GPU, "measured" on CPU), "device",
    # "dtype", "flops_per_second", "threads", "measured_at", "busy_cores" (CPU), "matched" (GPU table entry),
    # "reference", "note"}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RunRecord:
        """A record from its JSON form (already upgraded to SCHEMA_VERSION); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        # a null where a collection belongs (hand-edited or written by another tool) means "none stored"
        empty = {f.name: f.default_factory for f in fields(cls) if f.default_factory is not MISSING}
        return cls(**{k: (empty[k]() if v is None and k in empty else v) for k, v in payload.items() if k in known})

    # -- identity ----------------------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def task_name(self) -> str:
        return str(self.task.get("name") or self.config["task"])

    @property
    def model_name(self) -> str:
        model = str(self.config["model"])
        return Path(model).name if "/" in model else model

    @property
    def group(self) -> str:
        """"<task>-<model>" ("-fp16"/"-bf16" added for mixed precision; a named config's name first, as in
        "yours-<task>-<model>"): the cell without its seed, as RunConfig.group says it."""
        cell = f"{self.task_name}-{self.model_name}{precision_suffix(str(self.config.get('precision') or 'fp32'))}"
        name = self.config.get("name")
        return cell if not name else f"{name}-{cell}"

    @property
    def env_key(self) -> str:
        return str(self.env.get("env_key", "unknown"))

    @property
    def device_class(self) -> str:
        return str(self.env.get("device_class", "unknown"))

    @property
    def versions(self) -> str:
        """Short label of the libraries that produced it, e.g. "transformers 5.24.0, torch 2.13.0"."""
        packages = self.env.get("packages") or {}
        return ", ".join(f"{name} {packages[name]}" for name in ("transformers", "torch") if packages.get(name))

    # -- what the task says about judging ----------------------------------------------------------------------
    @property
    def primary_metric(self) -> str:
        return str(self.task["primary_metric"])

    @property
    def higher_is_better(self) -> bool:
        return bool(self.task.get("higher_is_better", True))

    @property
    def is_regression(self) -> bool:
        return bool(self.task.get("is_regression", False))

    # -- results -----------------------------------------------------------------------------------------------
    @property
    def eval_splits(self) -> list[str]:
        return list(self.metrics)

    def metric(self, split: str, name: str) -> float | None:
        return (self.metrics.get(split) or {}).get(name)

    def primary(self, split: str | None = None) -> float | None:
        """The task's primary metric on the first (or given) eval split."""
        if not self.metrics:
            return None
        return self.metric(split or self.eval_splits[0], self.primary_metric)

    def split_predictions(self, split: str) -> Mapping[str, Sequence[Any]]:
        """{"idx", "predictions", "labels"} of one eval split; empty when not stored."""
        return self.predictions.get(split) or {}

    def curve(self, split: str, metric: str) -> list[tuple[float, float | None]]:
        """(optimizer step, eval metric) of every evaluation during training."""
        return [(e["step"], (e.get(split) or {}).get(metric)) for e in self.epochs if split in e]

    @property
    def eval_steps(self) -> list[float]:
        return [e["step"] for e in self.epochs]

    @property
    def model_flops_per_second(self) -> float | None:
        """Achieved model FLOP/s of training (None in records from before MFU, or where it was not counted)."""
        return (self.timings.get("model_flops") or {}).get("per_second")

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilisation of training: achieved over the device's peak FLOP/s, 0-1."""
        return (self.timings.get("model_flops") or {}).get("mfu")

    @property
    def step_seconds(self) -> list[float]:
        return list(self.timings.get("train_step_seconds") or [])

    def seconds_at_step(self, step: float) -> float | None:
        """Training seconds spent before optimizer step `step` (None when never reached or not timed)."""
        seconds = self.step_seconds
        if step == float("inf") or not seconds:
            return None
        return round(sum(seconds[:int(step)]), 3)
