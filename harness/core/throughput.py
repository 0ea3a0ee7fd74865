"""Throughput measurement through the real Trainer: repeated rounds, per-step seconds with warm-up excluded.

A round is a fresh model and Trainer (`setup`, untimed by pytest-benchmark) running `steps` optimizer steps
(`train_round`, timed). `runner.StepTimer` times every step, CUDA-synchronised on GPU; the first `warmup` steps of
each round are dropped. Eval rounds time `Trainer.predict` batch by batch. Both objects plug into
`benchmark.pedantic(target, setup=...)` or run on their own with `measure()`.

Every measurement also records how fast the machine itself was: a fixed single-threaded numpy matmul (independent of
torch and transformers) timed before and after every round, and how busy the rest of the machine was (other
processes' CPU use, in cores). On a shared CPU a neighbour's job swings step times by up to 3x within seconds
(measured here), far more than any slowdown worth flagging, so a verdict is only given when the reference ran at
the baseline's speed and held steady (see baselines.judge_throughput).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from harness.core import build
from harness.core import distributed
from harness.machine import env
from harness.core import models
from harness.data.loading import load_task
from harness.data.featurize import featurize
from harness.core.config import RunConfig
from harness.machine.speed import MachineLoad, reference_seconds
from harness.core.runner import StepTimer, device_now, resolve_device, scratch_parent
from harness.data.tasks import get_task

MEASUREMENT_VERSION = 1


class _Prepared:
    """Data, features and the model spec of one cell, loaded once for all rounds; `trainer()` builds each round's
    Trainer through harness.core.build, with every setting of the cell (the runner's builder, bench overrides)."""

    def __init__(self, config: RunConfig, eval_samples: int | None = None) -> None:
        self.config = config
        self.task = get_task(config.task)
        self.device = resolve_device(config.device)
        self.spec = models.get_model(config.model)
        data = load_task(self.task, source=config.source, glue_dir=config.glue_dir,
                         max_train_samples=config.max_train_samples, max_eval_samples=config.max_eval_samples,
                         subset_seed=config.data_seed)
        loaded = build.load_model(config, self.spec, self.task)
        self.tokenizer = loaded.tokenizer
        self.provenance = loaded.provenance
        features = featurize(data, loaded.tokenizer, max_length=config.max_length, cache_dir=models.cache_root())
        self.train_set = features.splits[self.task.train_split]
        split = self.task.eval_splits[0]
        eval_set = features.splits[split]
        if eval_samples is not None and eval_samples < len(eval_set):
            eval_set = eval_set.select(range(eval_samples))
        self.eval_set = eval_set
        self.tokens_per_train_sample = features.tokens[self.task.train_split] / max(len(self.train_set), 1)
        self.tokens_per_eval_sample = sum(len(ids) for ids in eval_set["input_ids"]) / max(len(eval_set), 1)
        self.data_identity = {"fingerprint": data.fingerprint, "source": data.provenance.get("source")}

    def trainer(self, scratch: str, callbacks: Sequence[Any], max_steps: int) -> Any:
        config = self.config
        model = build.load_model(config, self.spec, self.task).model
        args = build.training_arguments(config, self.device, len(self.train_set), scratch,
                                        **build.bench_overrides(scratch, max_steps))
        return build.trainer(config, model=model, tokenizer=self.tokenizer, train_set=self.train_set, args=args,
                             callbacks=callbacks)


class _Rounds:
    """What both benches keep per timed round: the machine's speed before and after it (reference workload), how
    busy other processes kept the CPU, and a scratch folder for the Trainer."""

    def __init__(self, reference: bool = True) -> None:
        self.rounds = 0
        self.load = MachineLoad()
        self._busy: list[float] = []
        self.reference: list[float] = []
        self._timed_reference = reference  # off where both sides are timed in turn (the A/B rounds): drift cancels
        self._scratch = tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-bench-", dir=scratch_parent())

    def _begin(self) -> None:
        if self._timed_reference:
            self.reference.append(reference_seconds())
        self.load.start()

    def _end(self) -> None:
        busy = self.load.stop()
        if self._timed_reference:
            self.reference.append(reference_seconds())
        self.rounds += 1
        if busy is not None:
            self._busy.append(busy)

    def _timed(self, trainer: Any) -> None:
        raise NotImplementedError

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def measure(self, rounds: int) -> dict[str, Any]:
        for _ in range(rounds):
            args, _ = self.setup()
            self._timed(*args)
        return self.result()

    def _machine(self) -> dict[str, Any]:
        """The result's machine fields; removes the scratch folder (the bench is done)."""
        self._scratch.cleanup()
        return {"busy_cores": max(self._busy) if self._busy else None,  # other processes' CPU use, worst round
                "reference_seconds": [round(s, 6) for s in self.reference]}  # machine speed around each round


class TrainBench(_Rounds):
    """Training throughput of one cell: `setup()` -> ((trainer,), {}), `train_round(trainer)` is what is timed."""

    def __init__(self, config: RunConfig, *, steps: int, warmup: int, callbacks: Sequence[Any] = (),
                 reference: bool = True) -> None:
        if warmup >= steps:
            raise ValueError(f"warmup ({warmup}) must be smaller than steps ({steps})")
        self.config, self.steps, self.warmup, self.callbacks = config, steps, warmup, tuple(callbacks)
        self.prepared = _Prepared(config)
        self.step_seconds: list[float] = []
        self._timer: StepTimer | None = None
        super().__init__(reference)

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        self._timer = StepTimer(self.prepared.device)
        trainer = self.prepared.trainer(self._scratch.name, [self._timer, *self.callbacks], self.steps)
        self._begin()
        return (trainer,), {}

    def train_round(self, trainer: Any) -> None:
        trainer.train()
        self._end()
        assert self._timer is not None
        self.step_seconds.extend(self._timer.step_seconds[self.warmup:])

    _timed = train_round

    def result(self) -> dict[str, Any]:
        median = statistics.median(self.step_seconds) if self.step_seconds else None
        # a timed step is one optimizer step: every micro-batch it accumulates
        batch = (self.config.train_batch_size or 0) * self.config.gradient_accumulation_steps
        return {
            "rounds": self.rounds, "steps_per_round": self.steps, "warmup_steps": self.warmup,
            "step_seconds": [round(s, 6) for s in self.step_seconds],  # every timed step after warm-up, in order
            "median_step_seconds": median,
            "samples_per_second": batch / median if median else None,
            "tokens_per_second": batch * self.prepared.tokens_per_train_sample / median if median else None,
            "tokens_per_sample": round(self.prepared.tokens_per_train_sample, 3),  # non-padding, train split
            **self._machine(),
        }


class _BatchTimer(TrainerCallback):
    """Seconds per prediction batch: the gap between consecutive on_prediction_step calls (CUDA-synchronised)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self._last = device_now(self.device)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = device_now(self.device)
        self.seconds.append(now - self._last)
        self._last = now


class EvalBench(_Rounds):
    """Eval throughput of one cell: `eval_round(trainer)` runs predict() over the eval subset; the first batch of
    each round (dataloader start-up) is excluded."""

    def __init__(self, config: RunConfig, *, eval_samples: int, callbacks: Sequence[Any] = ()) -> None:
        self.config = config
        self.prepared = _Prepared(config, eval_samples=eval_samples)
        super().__init__()
        self._timer = _BatchTimer(self.prepared.device)
        self.trainer = self.prepared.trainer(self._scratch.name, [self._timer, *callbacks], 1)
        self.batch_seconds: list[float] = []

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        self._begin()
        return (self.trainer,), {}

    def eval_round(self, trainer: Any) -> None:
        self._timer.seconds = []
        self._timer.start()
        trainer.predict(self.prepared.eval_set)
        self._end()
        self.batch_seconds.extend(self._timer.seconds[1:])

    _timed = eval_round

    def result(self) -> dict[str, Any]:
        median = statistics.median(self.batch_seconds) if self.batch_seconds else None
        batch = self.config.eval_batch_size or 0
        return {
            "rounds": self.rounds, "samples": len(self.prepared.eval_set), "batch_size": batch,
            "batch_seconds": [round(s, 6) for s in self.batch_seconds],  # full batches after the first, in order
            "median_batch_seconds": median,
            "samples_per_second": batch / median if median else None,
            "tokens_per_second": batch * self.prepared.tokens_per_eval_sample / median if median else None,
            "tokens_per_sample": round(self.prepared.tokens_per_eval_sample, 3),
            **self._machine(),
        }


def measurement_context(config: RunConfig, prepared: _Prepared) -> dict[str, Any]:
    """What a throughput number depends on besides the code: device, settings, checkpoint, data. The config is the
    whole RunConfig (every field reaches the benches' Trainer, see harness.core.build) plus the processes training
    together; comparability.THROUGHPUT_CONFIG picks the fields that are judged."""
    return {"config": {**dataclasses.asdict(config), "world_size": distributed.world_size()},
            "env": env.fingerprint(prepared.device), "model": prepared.provenance, "data": prepared.data_identity}
