"""The run record: what one fine-tuning cell produced, with full provenance. Schema documented key by key.

Records are plain JSON so that records from other library versions, machines and shards merge by concatenation
and compare side by side. Bump SCHEMA_VERSION on any incompatible change and add a migration in results.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    schema_version: int  # of this layout; readers refuse unknown versions (results.py)
    run_id: str  # unique per run: uuid4 hex
    cell: str  # matrix cell id "<task>-<model>-s<seed>", e.g. "mrpc-minilm-s0"
    created_at: str  # UTC ISO-8601 time the run finished
    status: str  # "ok" or "failed"
    error: str | None  # the failure message when status == "failed"
    config: dict[str, Any]  # the full RunConfig (preset already applied) that produced this run
    task: dict[str, Any]  # the TaskSpec used: name, version, metrics, primary_metric, higher_is_better, labels
    env: dict[str, Any]  # harness.env.fingerprint(): packages, device, machine_id, device_class, env_key, git
    data: dict[str, Any]  # data provenance: source, files + sha256 or hub revision, subsets; rows and tokens per split
    model: dict[str, Any]  # checkpoint provenance: spec, path, revision, weights sha256, parameter count
    epochs: list[dict[str, Any]] = field(default_factory=list)  # each eval in training: {"epoch", "step", "<split>": metrics}
    train_loss: list[dict[str, float]] = field(default_factory=list)  # logged training loss: {"step", "epoch", "loss"}
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)  # final predict() metrics per eval split
    predict_contract: dict[str, Any] = field(default_factory=dict)  # per split: shapes, dtypes, metric keys of predict()
    predictions: dict[str, dict[str, list]] = field(default_factory=dict)  # per split: "idx", "predictions", "labels"
    timings: dict[str, Any] = field(default_factory=dict)  # wall seconds, samples/s, tokens/s, step times, memory

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def primary(self, split: str | None = None) -> float | None:
        """The task's primary metric on the first (or given) eval split."""
        if not self.metrics:
            return None
        name = self.task["primary_metric"]
        return self.metrics[split or next(iter(self.metrics))].get(name)
