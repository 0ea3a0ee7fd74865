"""Faults injected into one side of an upgrade check (`--patch-to tests/upgrade_faults.py:FUNC`).

Each function patches the real Trainer in the process it runs in (called at interpreter start by the side's
generated sitecustomize), so the check sees a "new version" that differs in one known way.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any


def slow_steps() -> None:
    """Every training step and optimizer step takes HARNESS_FAULT_SLOWDOWN (default 0.10) longer."""
    import accelerate.optimizer
    import transformers

    fraction = float(os.environ.get("HARNESS_FAULT_SLOWDOWN", "0.10"))

    def slowed(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            out = method(*args, **kwargs)
            time.sleep(fraction * (time.perf_counter() - started))
            return out
        return wrapper

    transformers.Trainer.training_step = slowed(transformers.Trainer.training_step)
    accelerate.optimizer.AcceleratedOptimizer.step = slowed(accelerate.optimizer.AcceleratedOptimizer.step)


def flip_predictions() -> None:
    """The evaluation path swaps the two class logits of every third example in each batch (or negates a
    regression score), so predict() and its metrics both see the damage."""
    import transformers

    original = transformers.Trainer.prediction_step

    @functools.wraps(original)
    def prediction_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        loss, logits, labels = original(self, *args, **kwargs)
        if logits is not None:
            logits = logits.clone()
            logits[::3] = logits[::3].flip(-1) if logits.ndim == 2 and logits.shape[-1] == 2 else -logits[::3]
        return loss, logits, labels

    transformers.Trainer.prediction_step = prediction_step


def halve_learning_rate() -> None:
    """TrainingArguments quietly halve the learning rate (a changed default the user never sees)."""
    import transformers

    original = transformers.TrainingArguments.__post_init__

    @functools.wraps(original)
    def post_init(self: Any) -> None:
        original(self)
        self.learning_rate = self.learning_rate / 2

    transformers.TrainingArguments.__post_init__ = post_init


def refuse_eval_strategy() -> None:
    """TrainingArguments no longer accept eval_strategy (the course walkthrough passes it)."""
    import transformers

    original = transformers.TrainingArguments.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if "eval_strategy" in kwargs:
            raise TypeError("TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'")
        original(self, *args, **kwargs)

    transformers.TrainingArguments.__init__ = init


def candidate_faults() -> None:
    """One fault per later section: schedule (trajectory), predictions (quality), speed (throughput)."""
    os.environ.setdefault("HARNESS_FAULT_SLOWDOWN", "0.5")
    halve_learning_rate()
    flip_predictions()
    slow_steps()
