"""What judges look at: run records and throughput measurements of one side of a comparison. Pure data, no I/O.

Both sides of a comparison are `Evidence`: the committed baselines, a folder of `harness run` records, or what a
pytest session produced. Judges group it by environment and cell group and judge candidate against baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.record import RunRecord

# Data provenance keys that only say where the bytes sit or how they were cached, not which bytes they are.
_DATA_NOISE = ("location", "rows", "tokens", "tokenization_cache_hit", "tokenization_cache_key", "version",
               "fingerprints")


def data_identity(data: Mapping[str, Any]) -> dict[str, Any]:
    """Which bytes a run read (file hashes, generator hashes or hub revision, subset ids), not where they sat."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DATA_NOISE:
            continue
        if key == "files" and isinstance(value, Mapping):
            value = {name: info.get("sha256") for name, info in value.items()}
        out[key] = value
    return out


BENCH, RUN = "bench", "run"  # throughput from the benchmark suite's fixed rounds, or from a fine-tuning run's steps


@dataclass(frozen=True)
class Measurement:
    """Throughput of one cell group on one machine: per part ("train", "eval"), timing samples and their context."""

    group: str  # "<task>-<model>"
    device_class: str  # env.fingerprint()["device_class"]
    context: Mapping[str, Any]  # config, env fingerprint, model and data identity
    parts: Mapping[str, Mapping[str, Any]]  # "train" -> step_seconds, samples/s, ...; "eval" -> batch_seconds, ...
    source: str = BENCH  # BENCH or RUN
    measured_at: str = ""

    @property
    def env_key(self) -> str:
        return str(self.context.get("env", {}).get("env_key", "unknown"))

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Measurement:
        """From a throughput baseline or a measurement file (suites write one per part)."""
        return cls(group=payload["group"], device_class=payload["device_class"], context=payload["context"],
                   parts={p: payload[p] for p in ("train", "eval") if payload.get(p)},
                   source=payload.get("source", BENCH), measured_at=payload.get("measured_at", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "device_class": self.device_class, "context": dict(self.context),
                "source": self.source, **{part: dict(result) for part, result in self.parts.items()}}

    def merged(self, other: Measurement) -> Measurement:
        """The parts of both (the other's win): train and eval are measured by separate tests."""
        return Measurement(self.group, self.device_class, self.context, {**self.parts, **other.parts}, self.source,
                           max(self.measured_at, other.measured_at))


def run_measurement(records: Sequence[RunRecord], *, warmup: int = 5) -> Measurement | None:
    """Train step times of fine-tuning runs (warm-up steps dropped), for records that carry no benchmark."""
    timed = [r for r in records if r.ok and len(r.step_seconds) > warmup + 2]
    if not timed:
        return None
    first = timed[0]
    steps = [s for r in timed for s in r.step_seconds[warmup:]]
    machines = [r.timings.get("machine") or {} for r in timed]
    busy = [m["busy_cores"] for m in machines if m.get("busy_cores") is not None]
    context = {"config": first.config, "env": first.env, "model": first.model}
    train = {"step_seconds": steps, "samples_per_second": first.timings.get("train_samples_per_second"),
             "tokens_per_second": first.timings.get("train_tokens_per_second"),
             # the machine's speed around each run and other processes' CPU use, when the records measured them
             "reference_seconds": [s for m in machines for s in m.get("reference_seconds") or []],
             "busy_cores": max(busy) if busy else None}
    return Measurement(group=first.group, device_class=first.device_class, context=context, source=RUN,
                       parts={"train": train}, measured_at=max(r.created_at for r in timed))


@dataclass
class Evidence:
    records: list[RunRecord] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.measurements)

    def environments(self) -> list[str]:
        return sorted({r.env_key for r in self.records} | {m.env_key for m in self.measurements})

    def env_labels(self) -> dict[str, str]:
        """env_key -> a readable label (library versions), for tables that show several environments."""
        labels = {m.env_key: m.env_key for m in self.measurements}
        labels.update({r.env_key: r.versions or r.env_key for r in self.records})
        return labels

    def latest_records(self) -> dict[tuple[str, str], list[RunRecord]]:
        """(env_key, group) -> the newest successful-or-not record per seed, sorted by seed."""
        newest: dict[tuple[str, str, int], RunRecord] = {}
        for record in sorted(self.records, key=lambda r: r.created_at):
            newest[(record.env_key, record.group, record.seed)] = record
        out: dict[tuple[str, str], list[RunRecord]] = {}
        for (env, group, _seed), record in sorted(newest.items(), key=lambda kv: kv[0]):
            out.setdefault((env, group), []).append(record)
        return out

    def latest_measurements(self) -> dict[tuple[str, str], list[Measurement]]:
        """(env_key, group) -> one merged measurement per (device class, source), newest parts winning."""
        merged: dict[tuple[str, str, str, str], Measurement] = {}
        for m in sorted(self.measurements, key=lambda m: m.measured_at):
            key = (m.env_key, m.group, m.device_class, m.source)
            merged[key] = merged[key].merged(m) if key in merged else m
        out: dict[tuple[str, str], list[Measurement]] = {}
        for (env, group, _device, _source), m in sorted(merged.items(), key=lambda kv: kv[0]):
            out.setdefault((env, group), []).append(m)
        return out
