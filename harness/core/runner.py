"""One matrix cell: RunConfig -> TrainingArguments -> Trainer (train, evals, predict) -> RunRecord, or a failed one.

No pytest and no I/O here beyond the Trainer's scratch folder (under the harness cache, swept after kill -9), the
harness caches and the progress stream a caller passes in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from transformers import TrainerCallback

from harness.core import build
from harness.core import compat
from harness.machine import env
from harness.machine import flops
from harness.data import metrics
from harness.core import models
from harness.core import trainers
# re-exported: callers and tests name them here
from harness.core.build import eval_interval, steps_per_epoch, training_arguments  # noqa: F401
from harness.core.config import RunConfig, check_inputs
from harness.data.loading import check_rows, load_task
from harness.machine.speed import MachineWitness, device_peak, tf32_enabled
from harness.data.featurize import Features, featurize
from harness.core.record import SCHEMA_VERSION, RunRecord
from harness.data.tasks import TaskSpec, get_task
from harness.errors import HarnessError, TrainingError


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError("device 'cuda' was requested but torch sees no CUDA device; use --device cpu or auto.")
    return requested


def preflight(config: RunConfig) -> str:
    """Everything about a cell that can be checked before it trains (values, files, device, the Trainer class);
    returns the device."""
    check_inputs(config)
    check_rows(get_task(config.task), source=config.source, glue_dir=config.glue_dir)
    device = resolve_device(config.device)
    if config.precision == "fp16" and device != "cuda":
        raise HarnessError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    trainers.resolve(config.trainer_class)
    if config.resume_from_checkpoint is not None and not compat.resume_reads_rng_state():
        raise HarnessError(f"resume_from_checkpoint cannot work with transformers {compat.TRANSFORMERS_VERSION} and "
                           "torch >= 2.6: this Trainer loads the checkpoint's rng_state.pth in a way torch 2.6 "
                           "refuses. Use transformers >= 4.50 or torch < 2.6, or train without resuming.")
    return device


def run_cell(config: RunConfig, *, callbacks: Sequence[Any] = ()) -> RunRecord:
    """`run`, with a user-actionable failure returned as a failed record instead of raised: what the CLI and the
    pytest session both call, so a failed cell is on file and the next cell runs."""
    try:
        return run(config, callbacks=callbacks)
    except HarnessError as err:
        return failed_record(config, err)


def failed_record(config: RunConfig, error: Exception) -> RunRecord:
    """A record for a cell that could not run: its config and environment, so the failure is on file too."""
    try:
        device = resolve_device(config.device)
    except HarnessError:
        device = "cpu"
    return RunRecord(
        schema_version=SCHEMA_VERSION, run_id=uuid.uuid4().hex, cell=config.cell_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), status="failed", error=str(error),
        config={**dataclasses.asdict(config), "resolved_device": device}, task=task_summary(get_task(config.task)),
        env=env.fingerprint(device), data={}, model={})


def run(config: RunConfig, *, callbacks: Sequence[Any] = ()) -> RunRecord:
    """Fine-tune and evaluate one cell through the real Trainer; raise HarnessError on user-actionable failures."""
    device = preflight(config)
    task = get_task(config.task)
    spec = models.get_model(config.model)
    data = load_task(task, source=config.source, glue_dir=config.glue_dir, max_train_samples=config.max_train_samples,
                     max_eval_samples=config.max_eval_samples, subset_seed=config.data_seed)
    fingerprint = env.fingerprint(device)
    loaded = build.load_model(config, spec, task)
    features = featurize(data, loaded.tokenizer, max_length=config.max_length, cache_dir=models.cache_root())
    train_set = features.splits[task.train_split]
    eval_sets = {name: features.splits[name] for name in task.eval_splits}
    divergence = DivergenceGuard(config, chance_loss(task, train_set["label"]))
    dtype = flops.compute_dtype(config.precision, loaded.provenance.get("dtype"), device == "cuda" and tf32_enabled())
    peak = device_peak(device, dtype, cpu_model=fingerprint["cpu"]["model"], cache_root=models.cache_root())

    timer = StepTimer(device)
    memory = PeakMemory(device)
    trajectory = Trajectory(config.trajectory_steps)
    with scratch_dir("trainer") as scratch:
        args = build.training_arguments(config, device, len(train_set), scratch)
        trainer = build.trainer(
            config, model=loaded.model, tokenizer=loaded.tokenizer, train_set=train_set, args=args,
            eval_set=eval_sets if len(eval_sets) > 1 else next(iter(eval_sets.values())),
            compute_metrics=metrics.trainer_metrics(task),
            callbacks=[timer, LossGuard(), divergence, trajectory, *callbacks])
        started = time.perf_counter()
        with MachineWitness() as machine:
            train_output = trainer.train(resume_from_checkpoint=build.expanded(config.resume_from_checkpoint))
        train_wall = time.perf_counter() - started
        if not math.isfinite(train_output.training_loss):
            raise _non_finite_loss(train_output.training_loss, config)
        outputs, predict_seconds = {}, {}
        for name, dataset in eval_sets.items():  # timed here: the Trainer's runtime can go stale (see compat)
            started = time.perf_counter()
            outputs[name] = compat.predict_in_dataset_order(trainer, dataset)
            predict_seconds[name] = time.perf_counter() - started
            divergence.check(outputs[name].metrics.get("test_loss"), f"the final evaluation ({name})")
            _check_primary(outputs[name].metrics, task, name, len(dataset))
        history = trainer.state.log_history
        planned_steps = trainer.state.max_steps
        resolved = {"resolved_device": device, "resolved_optim": str(getattr(args.optim, "value", args.optim)),
                    "resolved_mixed_precision": str(trainer.accelerator.mixed_precision),
                    "world_size": int(args.world_size)}  # processes training together (torchrun), 1 alone

    record = RunRecord(
        schema_version=SCHEMA_VERSION, run_id=uuid.uuid4().hex, cell=config.cell_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), status="ok", error=None,
        config={**dataclasses.asdict(config), **resolved}, task=task_summary(task), env=fingerprint,
        data={**data.provenance, "rows": {k: len(v) for k, v in features.splits.items()}, "tokens": features.tokens,
              "tokenization_cache_hit": features.cache_hit, "tokenization_cache_key": features.cache_key},
        model=loaded.provenance,
        epochs=_epoch_evals(history, task),
        # the checkpoint's loss log before a resume, then this run's
        train_loss=[{"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]} for h in history
                    if "loss" in h and h["step"] <= trajectory.start] + trajectory.cadence,
        trajectory=trajectory.steps,
        metrics={name: _strip_prefix(out.metrics, "test_", task.metrics) for name, out in outputs.items()},
        predict_contract={name: contract_summary(out) for name, out in outputs.items()},
        predictions={name: _compact_predictions(task, out, eval_sets[name]["idx"]) for name, out in outputs.items()},
        timings={**_timings(config, train_output.metrics, train_wall, timer, predict_seconds, features,
                            memory.peak()),
                 "model_flops": _model_flops(config, loaded.model.config, train_set, timer, planned_steps, peak, dtype),
                 "machine": {**machine.result(), "peak": peak}},
    )
    return record


def _check_primary(measured: Mapping[str, Any], task: TaskSpec, split: str, rows: int) -> None:
    """A cell whose headline metric could not be computed failed: a record without it is not "ok"."""
    value = measured.get(f"test_{task.primary_metric}")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return
    why = ("the predictions or labels are constant" if task.is_regression
           else "compute_metrics did not return it")
    raise HarnessError(f"{task.primary_metric} could not be computed on the {split} split ({rows} example(s)): {why}. "
                       "Evaluate more examples (--max-eval-samples) or train longer; the cell is recorded as failed.")


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
    # "order": rows are in the dataset's order (records before it may hold a length-grouped order, see
    # compat.predict_in_dataset_order)
    return {"idx": list(idx), "predictions": values, "labels": labels, "order": "dataset"}


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


def _model_flops(config: RunConfig, model_config: Any, train_set: Any, timer: StepTimer, planned_steps: int,
                 peak: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """Model FLOPs of training over the non-padding tokens, per second of optimizer steps, and MFU."""
    return flops.summary(model_config, (len(ids) for ids in train_set["input_ids"]),
                         batch_size=config.train_batch_size or 1, epochs=config.epochs or 1.0,
                         steps_done=len(timer.step_seconds), steps_planned=planned_steps,
                         seconds=sum(timer.step_seconds), peak=peak, dtype=dtype,
                         devices=int(os.environ.get("WORLD_SIZE", "1")))  # torchrun's ranks share the work


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

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = device_now(self.device)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_seconds.append(device_now(self.device) - self._started)


def device_now(device: str) -> float:
    """perf_counter() after the device's queued work is done (CUDA kernels run asynchronously)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


class Trajectory(TrainerCallback):
    """The first `limit` optimizer steps' training loss, grad norm and learning rate, one entry per step; and the
    training loss at the Trainer's own logging cadence, as it would log it without us.

    The rate is the one the step applied, read from the optimizer between its step and the scheduler's: the logged
    `learning_rate` is that one on 4.57+ but the next step's on 4.46-4.50 (measured).

    It asks the Trainer to log each of those steps (`control.should_log`), which only reads values: training is
    unchanged. Each log resets the Trainer's running loss, so a cadence log right after forced ones covers fewer
    steps; `cadence` restores the mean over the whole interval from the per-step losses.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.steps: list[dict[str, float | None]] = []
        self.cadence: list[dict[str, float]] = []
        self.start = 0  # the global step training (re)started from
        self._forced: set[int] = set()
        self._last_logged = self._last_cadence = 0
        self._pending = 0.0  # loss summed over forced steps since the last cadence log
        self._rate: float | None = None  # of the latest optimizer step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = self._last_logged = self._last_cadence = state.global_step

    def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
        self._rate = optimizer.param_groups[0]["lr"] if optimizer is not None else None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step <= self.limit and not control.should_log:
            control.should_log = True
            self._forced.add(state.global_step)
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any) -> None:
        logs, step = logs or {}, state.global_step
        if "loss" not in logs:
            return
        if step <= self.limit:
            self.steps.append({"step": step, "loss": logs["loss"], "grad_norm": logs.get("grad_norm"),
                               "learning_rate": self._rate})
        covered = logs["loss"] * (step - self._last_logged)  # the Trainer logs the mean since its previous log
        if step in self._forced:
            self._pending, self._last_logged = self._pending + covered, step
            return
        mean = logs["loss"] if self._last_logged == self._last_cadence else (
            (self._pending + covered) / (step - self._last_cadence))
        self.cadence.append({"step": step, "epoch": logs.get("epoch", state.epoch), "loss": mean})
        self._pending, self._last_logged, self._last_cadence = 0.0, step, step


class LossGuard(TrainerCallback):
    """Stops training with an actionable error as soon as a logged training loss is not finite."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(
                f"Training loss became {loss} at step {state.global_step} (learning rate {args.learning_rate}). "
                "Lower the learning rate, use fp32, or check the labels; the run was stopped.")


# A diverged eval loss is orders of magnitude above chance: a too-large step drives the logits to extremes, so the
# loss grows with the logit scale (or overflows to inf/nan). Overfitting moves it by a small factor: an eval loss
# two or three times the chance level is common late in training. 10x the larger of the chance loss and the first
# eval's loss sits between the two, and the first eval's term keeps a model that starts above chance from tripping.
DIVERGENCE_FACTOR = 10.0


def chance_loss(task: TaskSpec, labels: Sequence[float]) -> float:
    """The eval loss of a model that learned nothing: ln(K) for K classes (a uniform guess), the variance of the
    training labels for regression (the MSE of always predicting their mean)."""
    if not task.is_regression:
        return math.log(task.num_labels)
    return float(np.var(np.asarray(labels, dtype=np.float64))) or 1.0


class DivergenceGuard(TrainerCallback):
    """Fails the cell when an evaluation loss is not finite or exceeds DIVERGENCE_FACTOR x max(chance, first eval)."""

    def __init__(self, config: RunConfig, chance: float) -> None:
        self.config, self.chance = config, chance
        self.first: float | None = None

    def check(self, loss: float | None, where: str) -> None:
        if loss is None:
            return
        ceiling = DIVERGENCE_FACTOR * max(self.chance, self.first or 0.0)
        if math.isfinite(loss) and loss <= ceiling:
            self.first = loss if self.first is None else self.first
            return
        first = "" if self.first is None else f" (the first eval's: {self.first:.4g})"
        raise TrainingError(
            f"Training diverged in {self.config.cell_id}: the eval loss was {loss:.4g} at {where}; a model that "
            f"learned nothing scores {self.chance:.4g}{first}, and a loss that is not finite or over "
            f"{DIVERGENCE_FACTOR:g}x that counts as divergence. Lower the learning rate (--learning-rate, now "
            f"{self.config.learning_rate:g}).")

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, float] | None = None,
                    **kw: Any) -> None:
        for key, value in (metrics or {}).items():
            if key.startswith("eval_") and key.endswith("_loss"):
                split = key[len("eval_"):-len("_loss")]
                self.check(value, f"step {state.global_step} (epoch {state.epoch or 0:.2f}"
                                  + (f", {split})" if split else ")"))


class Progress(TrainerCallback):
    """Live progress of one cell on `stream`: the planned optimizer steps when training starts, then the step, its
    rate, an ETA and the last eval's primary metric — one updating line on a terminal; otherwise a plain line at
    most every `every` seconds (so short cells print only the plan). Call `finish()` after the cell."""

    def __init__(self, primary: str, stream: TextIO | None = None, *, every: float = 30.0) -> None:
        self.primary, self.stream, self.every = primary, stream or sys.stderr, every
        self.tty = self.stream.isatty()
        self.started = self.shown = 0.0
        self.metric = ""
        self.width = 0  # of the updating line on a terminal

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.started = self.shown = time.perf_counter()
        per_epoch = math.ceil(state.max_steps / args.num_train_epochs) if args.num_train_epochs > 0 else "?"
        epochs = args.num_train_epochs
        self.stream.write(f"    {state.max_steps} optimizer steps planned ({epochs:g} epoch{'s' * (epochs != 1)} x "
                          f"{per_epoch} steps)\n")
        self.stream.flush()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._show(state)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, float] | None = None,
                    **kw: Any) -> None:
        value = next((v for k, v in (metrics or {}).items() if k.endswith(f"_{self.primary}")), None)
        if isinstance(value, (int, float)):
            self.metric = f", eval {self.primary} {value:.3f} at epoch {state.epoch or 0:.2f}"
        self._show(state)

    def _show(self, state: Any) -> None:
        now = time.perf_counter()
        if now - self.shown < (0.5 if self.tty else self.every):
            return
        self.shown = now
        done, total = state.global_step, state.max_steps
        rate = done / (now - self.started) if now > self.started else 0.0
        eta = _duration((total - done) / rate) if rate else "?"
        share = 100 * done / max(total, 1)
        line = f"    step {done}/{total} ({share:.0f}%), {rate:.2f} steps/s, ETA {eta}{self.metric}"
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Clear the updating line (a terminal only), also after a cell that failed mid-training."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# ---------------------------------------------------------------------------------------------- scratch folders

def scratch_root() -> Path:
    """Where Trainer output folders live while a cell runs: $HARNESS_CACHE/scratch/<pid>-<kind>-<random>."""
    return models.cache_root() / "scratch"


def scratch_parent() -> Path:
    """The scratch root, created, after removing folders left by dead processes (kill -9 runs no cleanup)."""
    sweep_scratch()
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A fresh scratch folder owned by this process, removed on exit (also on KeyboardInterrupt)."""
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{kind}-", dir=scratch_parent()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_scratch(pid: int | None = None) -> list[Path]:
    """Remove the scratch folders of process `pid`, or (None) of every process that is no longer alive."""
    removed = []
    root = scratch_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        owner = folder.name.partition("-")[0]
        if not owner.isdigit() or (int(owner) != pid if pid is not None else _alive(int(owner))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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
