"""One matrix cell: RunConfig -> TrainingArguments -> Trainer (train, per-epoch eval, predict) -> RunRecord.

No pytest and no I/O here beyond the Trainer's scratch output folder and the harness caches.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from transformers import DataCollatorWithPadding, TrainerCallback, set_seed

from harness import compat, env, metrics, models
from harness.data import TaskData, load_task
from harness.errors import HarnessError, TrainingError, UnknownNameError
from harness.featurize import Features, featurize
from harness.record import SCHEMA_VERSION, RunRecord
from harness.tasks import TaskSpec, get_task

# Presets fix every hyperparameter a cell depends on; explicit RunConfig fields override them.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    # The course walkthrough: TrainingArguments defaults, tokenizer truncation at the model's limit.
    "seed": MappingProxyType({"epochs": 3.0, "train_batch_size": 8, "eval_batch_size": 8, "learning_rate": 5e-5,
                              "max_length": None, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # transformers' examples/run_glue.py as documented for GLUE.
    "run_glue": MappingProxyType({"epochs": 3.0, "train_batch_size": 32, "eval_batch_size": 8, "learning_rate": 2e-5,
                                  "max_length": 128, "weight_decay": 0.0, "warmup_ratio": 0.0}),
    # Small and fast: seconds per cell on a 2-core CPU; learns the built-in tasks well above chance.
    "smoke": MappingProxyType({"epochs": 2.0, "train_batch_size": 32, "eval_batch_size": 64, "learning_rate": 1e-4,
                               "max_length": 64, "weight_decay": 0.01, "warmup_ratio": 0.1,
                               "max_train_samples": 512, "max_eval_samples": 512}),
})
# Randomly initialised tiny models learn from scratch: a larger step and more examples than a pretrained
# checkpoint needs (they run ~30x faster per example, so a cell still takes seconds).
TINY_MODEL_OVERRIDES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "smoke": MappingProxyType({"learning_rate": 1e-3, "epochs": 6.0, "max_train_samples": 4096}),
})
PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunConfig:
    model: str
    task: str
    seed: int = 0
    preset: str = "smoke"
    epochs: float | None = None
    train_batch_size: int | None = None
    eval_batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_ratio: float | None = None
    max_length: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    data_seed: int = 0  # picks the subsets; independent of the training seed
    evals_per_epoch: int = 1  # >1: evaluate every 1/N epoch (finer time-to-quality curves)
    precision: str = "fp32"
    device: str = "auto"
    source: str | None = None  # "hub" | "local" | "builtin"; None: GLUE_DIR if set, else hub
    glue_dir: str | None = None

    @property
    def cell_id(self) -> str:
        return f"{self.task}-{Path(self.model).name if '/' in self.model else self.model}-s{self.seed}"


def make_config(model: str, task: str, *, seed: int = 0, preset: str = "smoke", **overrides: Any) -> RunConfig:
    """A RunConfig with the preset's values filled in; overrides that are None keep the preset's value."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, PRESETS)
    tiny = models.get_model(model).kind == "tiny"
    values = {**PRESETS[preset], **(TINY_MODEL_OVERRIDES.get(preset, {}) if tiny else {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    config = RunConfig(model=model, task=task, seed=seed, preset=preset, **values)
    _validate(config)
    return config


def _validate(config: RunConfig) -> None:
    if config.precision not in PRECISIONS:
        raise HarnessError(f"Unknown precision {config.precision!r}; allowed: {', '.join(PRECISIONS)}.")
    if config.device not in DEVICES:
        raise HarnessError(f"Unknown device {config.device!r}; allowed: {', '.join(DEVICES)}.")
    for name in ("train_batch_size", "eval_batch_size", "max_length", "max_train_samples", "max_eval_samples",
                 "evals_per_epoch"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise HarnessError(f"{name} must be a positive integer, got {value!r}.")
    if config.epochs is not None and config.epochs <= 0:
        raise HarnessError(f"epochs must be positive, got {config.epochs!r}.")


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError("device 'cuda' was requested but torch sees no CUDA device; use --device cpu or auto.")
    return requested


def run(config: RunConfig, *, callbacks: Sequence[Any] = ()) -> RunRecord:
    """Fine-tune and evaluate one cell through the real Trainer; raise HarnessError on user-actionable failures."""
    _validate(config)
    task = get_task(config.task)
    device = resolve_device(config.device)
    if config.precision == "fp16" and device != "cuda":
        raise HarnessError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    spec = models.get_model(config.model)
    data = load_task(task, source=config.source, glue_dir=config.glue_dir, max_train_samples=config.max_train_samples,
                     max_eval_samples=config.max_eval_samples, subset_seed=config.data_seed)
    fingerprint = env.fingerprint(device)
    set_seed(config.seed)  # before loading: the new classifier head is drawn from this seed
    loaded = models.load(spec, task)
    features = featurize(data, loaded.tokenizer, max_length=config.max_length, cache_dir=models.cache_root())
    train_set = features.splits[task.train_split]
    eval_sets = {name: features.splits[name] for name in task.eval_splits}

    timer = StepTimer(device)
    memory = PeakMemory(device)
    steps_per_epoch = math.ceil(len(train_set) / config.train_batch_size)
    eval_every = max(1, steps_per_epoch // config.evals_per_epoch) if config.evals_per_epoch > 1 else None
    with tempfile.TemporaryDirectory(prefix="harness-trainer-") as scratch:
        args = compat.training_arguments(
            output_dir=scratch, num_train_epochs=config.epochs, learning_rate=config.learning_rate,
            per_device_train_batch_size=config.train_batch_size, per_device_eval_batch_size=config.eval_batch_size,
            weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio, seed=config.seed,
            eval_strategy="steps" if eval_every else "epoch", eval_steps=eval_every, save_strategy="no",
            logging_strategy="steps", logging_steps=max(1, steps_per_epoch // 4),
            logging_nan_inf_filter=False,  # the default hides a diverged loss by averaging it away
            report_to="none", disable_tqdm=True, use_cpu=device == "cpu", dataloader_pin_memory=device == "cuda",
            fp16=config.precision == "fp16", bf16=config.precision == "bf16")
        trainer = compat.trainer(
            model=loaded.model, args=args, train_dataset=train_set,
            eval_dataset=eval_sets if len(eval_sets) > 1 else next(iter(eval_sets.values())),
            tokenizer=loaded.tokenizer, data_collator=DataCollatorWithPadding(loaded.tokenizer),
            compute_metrics=metrics.trainer_metrics(task), callbacks=[timer, LossGuard(), *callbacks])
        started = time.perf_counter()
        train_output = trainer.train()
        train_wall = time.perf_counter() - started
        if not math.isfinite(train_output.training_loss):
            raise _non_finite_loss(train_output.training_loss, config)
        outputs, predict_seconds = {}, {}
        for name, dataset in eval_sets.items():  # timed here: the Trainer's runtime can go stale (see compat)
            started = time.perf_counter()
            outputs[name] = trainer.predict(dataset)
            predict_seconds[name] = time.perf_counter() - started
        history = trainer.state.log_history

    record = RunRecord(
        schema_version=SCHEMA_VERSION, run_id=uuid.uuid4().hex, cell=config.cell_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), status="ok", error=None,
        config={**dataclasses.asdict(config), "resolved_device": device}, task=task_summary(task), env=fingerprint,
        data={**data.provenance, "rows": {k: len(v) for k, v in features.splits.items()}, "tokens": features.tokens,
              "tokenization_cache_hit": features.cache_hit, "tokenization_cache_key": features.cache_key},
        model=loaded.provenance,
        epochs=_epoch_evals(history, task),
        train_loss=[{"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]} for h in history if "loss" in h],
        metrics={name: _strip_prefix(out.metrics, "test_", task.metrics) for name, out in outputs.items()},
        predict_contract={name: contract_summary(out) for name, out in outputs.items()},
        predictions={name: _compact_predictions(task, out, eval_sets[name]["idx"]) for name, out in outputs.items()},
        timings=_timings(config, train_output.metrics, train_wall, timer, predict_seconds, features, memory.peak()),
    )
    return record


def task_summary(task: TaskSpec) -> dict[str, Any]:
    return {"name": task.name, "version": task.version, "benchmark": task.benchmark, "metrics": list(task.metrics),
            "primary_metric": task.primary_metric, "higher_is_better": task.higher_is_better,
            "is_regression": task.is_regression, "label_names": list(task.label_names)}


def contract_summary(output: Any) -> dict[str, Any]:
    """Shapes, dtypes and metric keys of one predict() result: what downstream code relies on."""
    def describe(array: Any) -> dict[str, Any] | None:
        if array is None:
            return None
        array = np.asarray(array)
        return {"shape": list(array.shape), "dtype": str(array.dtype)}

    return {"type": type(output).__name__, "fields": list(getattr(output, "_fields", ())),
            "predictions": describe(output.predictions), "label_ids": describe(output.label_ids),
            "metric_keys": sorted(output.metrics)}


def _strip_prefix(values: Mapping[str, float], prefix: str, task_metrics: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in values.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        out[name] = None if isinstance(value, float) and math.isnan(value) else value
    for name in task_metrics:  # a metric that compute_metrics did not return is recorded as missing, not dropped
        out.setdefault(name, None)
    return out


def _epoch_evals(history: Sequence[Mapping[str, Any]], task: TaskSpec) -> list[dict[str, Any]]:
    """Per-epoch eval metrics keyed by split; the Trainer prefixes keys eval_ or eval_<split>_ for a dict."""
    epochs: dict[tuple[float, int], dict[str, Any]] = {}
    for entry in history:
        if not any(key.startswith("eval_") for key in entry):
            continue
        row = epochs.setdefault((entry.get("epoch"), entry["step"]), {"epoch": entry.get("epoch"),
                                                                     "step": entry["step"]})
        for key, value in entry.items():
            if not key.startswith("eval_"):
                continue
            name = key[len("eval_"):]
            split = next((s for s in task.eval_splits if len(task.eval_splits) > 1 and name.startswith(s + "_")),
                         task.eval_splits[0])
            metric = name[len(split) + 1:] if len(task.eval_splits) > 1 else name
            row.setdefault(split, {})[metric] = value
    return list(epochs.values())


def _compact_predictions(task: TaskSpec, output: Any, idx: Sequence[int]) -> dict[str, list]:
    predicted = metrics.logits_to_predictions(task, output.predictions)
    if task.is_regression:
        values: list = [round(float(v), 5) for v in predicted]
    else:
        values = [int(v) for v in predicted]
    labels = [] if output.label_ids is None else np.asarray(output.label_ids).reshape(-1).tolist()
    return {"idx": list(idx), "predictions": values, "labels": labels}


def _timings(config: RunConfig, train_metrics: Mapping[str, float], train_wall: float, timer: StepTimer,
             predict_seconds: Mapping[str, float], features: Features, peak: Mapping[str, int | None]
             ) -> dict[str, Any]:
    task = get_task(config.task)
    tokens = features.tokens
    epochs = config.epochs or 1.0
    trained_samples = train_metrics.get("train_samples_per_second", 0.0) * train_metrics.get("train_runtime", 0.0)
    step_seconds = sum(timer.step_seconds)
    train_tokens = tokens[task.train_split] * epochs
    evals = {name: {"wall_s": round(seconds, 4), "samples_per_second": len(features.splits[name]) / seconds,
                    "tokens_per_second": tokens[name] / seconds}
             for name, seconds in predict_seconds.items()}
    return {
        "train_wall_s": round(train_wall, 4),  # Trainer.train() including its per-epoch evaluations
        "train_runtime_s": train_metrics.get("train_runtime"),
        "train_steps": len(timer.step_seconds),
        "train_step_seconds": [round(s, 6) for s in timer.step_seconds],  # every optimizer step, in order
        "train_samples_per_second": trained_samples / step_seconds if step_seconds else None,  # steps only
        "train_tokens_per_second": train_tokens / step_seconds if step_seconds else None,  # non-padding tokens
        "eval": evals,
        "peak_rss_bytes": peak["rss"],
        "cuda_max_allocated_bytes": peak["cuda"],
    }


def _non_finite_loss(loss: float, config: RunConfig) -> TrainingError:
    return TrainingError(
        f"Training loss became {loss} in cell {config.cell_id} (lr {config.learning_rate}, precision "
        f"{config.precision}). Lower the learning rate (--learning-rate), use fp32, or check the labels "
        f"for this task; the run was stopped and not recorded as a result.")


class StepTimer(TrainerCallback):
    """Times every optimizer step (CUDA-synchronised on GPU)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.step_seconds: list[float] = []
        self._started = 0.0

    def _now(self) -> float:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = self._now()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_seconds.append(self._now() - self._started)


class LossGuard(TrainerCallback):
    """Stops training with an actionable error as soon as a logged training loss is not finite."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(
                f"Training loss became {loss} at step {state.global_step} (learning rate {args.learning_rate}). "
                "Lower the learning rate, use fp32, or check the labels; the run was stopped.")


class PeakMemory:
    """Peak resident memory of this process during a cell (Linux: VmHWM reset at start), CUDA peak on GPU."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._reset = _reset_peak_rss()
        if device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> dict[str, int | None]:
        cuda = None
        if self.device == "cuda":
            import torch

            cuda = int(torch.cuda.max_memory_allocated())
        return {"rss": _peak_rss(self._reset), "cuda": cuda}


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss(was_reset: bool) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Fallback: lifetime peak of the process (kilobytes on Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if not was_reset else None
