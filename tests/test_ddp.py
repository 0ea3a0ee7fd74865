"""Multi-process cells: `torchrun --nproc_per_node 2 -m harness.cli run` (DDP through accelerate, gloo on CPU) trains
what one process trains with the same global batch, evaluates on the same schedule, and rank 0 alone writes the
record, which carries world_size 2.

Tolerance, measured: with dropout off, two ranks of batch 8 and one process of batch 16 give per-step training
losses within 1.2e-7 of each other over these 64 steps (float32 rounding: the gradient is summed in another order
and padded to other lengths), the same eval loss to 1e-7 and no prediction that differs. The test allows 1e-5 on
losses (about 100x that, for other CPUs' kernels) and one of 256 predictions; a wrong batch split, a loss scaled by
the world size or dropout masks drawn per rank all move the first step's loss by 1e-3 or more. It stops at 64 steps
because training at this learning rate amplifies rounding: over 128 steps the step losses drifted 3.6e-4 apart and
the final accuracy 3.6 points. Dropout is off because each rank draws its own masks for its half of the batch: with
it the runs differ by sampling, not arithmetic (measured: 5e-3 on the first step, up to 0.21 on later ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from harness.suite import matrix
from harness.core import runner
from harness.store import results

TESTS = Path(__file__).resolve().parent
WORLD = 2
# a syn-sst2 smoke cell sized to learn (accuracy ~0.73 after 64 steps at lr 3e-3) in seconds
SETTINGS = {"max_train_samples": 1024, "max_eval_samples": 256, "epochs": 1.0, "learning_rate": 3e-3,
            "device": "cpu"}


class _NoDropout(transformers.Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for module in self.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0


class ParityTrainer(_NoDropout):
    """Dropout off, and the loss a mean over each device's batch: `model_accepts_loss_kwargs = False`, the switch
    transformers documents for models that do not normalise by num_items_in_batch themselves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


class DefaultLossTrainer(_NoDropout):
    """Dropout off; the loss as the Trainer computes it by default."""


def _gloo() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


pytestmark = pytest.mark.skipif(not _gloo(), reason="this torch build has no torch.distributed gloo backend")


def _single(trainer: str, **settings: Any) -> Any:
    """The cell in this process with the global batch (16) on one device."""
    selection = matrix.Selection(models=("tiny-bert",), tasks=("syn-sst2",),
                                 overrides={**settings, "train_batch_size": 16, "trainer_class": f"test_ddp:{trainer}"})
    (cell,) = matrix.cells("smoke", selection)
    return runner.run(cell.config)


def _torchrun(output: Path, trainer: str, **settings: Any) -> list[dict[str, Any]]:
    """The same cell under torchrun: WORLD processes of batch 16 / WORLD, through `harness run --tier smoke`."""
    argv = ["--tier", "smoke", "--models", "tiny-bert", "--tasks", "syn-sst2", "--train-batch-size", str(16 // WORLD),
            "--trainer-class", f"test_ddp:{trainer}", "--output", str(output)]
    names = {"max_train_samples": "--max-train-samples", "max_eval_samples": "--max-eval-samples",
             "epochs": "--epochs", "learning_rate": "--learning-rate", "device": "--device"}
    argv += [item for key, value in settings.items() for item in (names[key], str(value))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(WORLD), "-m", "harness.cli", "run", *argv], env=env, capture_output=True, text=True,
                          timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results.load_records(results.find_records(output))


def test_two_gloo_processes_train_what_one_process_trains(tmp_path: Path) -> None:
    single = _single("ParityTrainer", **SETTINGS)
    (ddp,) = _torchrun(tmp_path, "ParityTrainer", **SETTINGS)  # one record: rank 0's
    assert (single.config["world_size"], ddp["config"]["world_size"]) == (1, WORLD)
    assert ddp["config"]["train_batch_size"] * WORLD == single.config["train_batch_size"] == 16
    # the same 64 optimizer steps, step by step
    assert len(ddp["trajectory"]) == len(single.trajectory) == 64
    for mine, theirs in zip(single.trajectory, ddp["trajectory"]):
        assert theirs["loss"] == pytest.approx(mine["loss"], abs=1e-5), f"step {mine['step']}"
    # evaluated and logged at the same steps (the smoke tier's two evaluations per epoch)
    assert [e["step"] for e in ddp["epochs"]] == single.eval_steps == [32, 64]
    assert [e["step"] for e in ddp["train_loss"]] == [e["step"] for e in single.train_loss]
    # the final predict(): every eval example, in order, the same metrics
    now, then = ddp["metrics"]["validation"], single.metrics["validation"]
    assert now["loss"] == pytest.approx(then["loss"], abs=1e-5)
    assert abs(now["accuracy"] - then["accuracy"]) <= 1 / 256 and then["accuracy"] > 0.6  # it learned something
    theirs, mine = ddp["predictions"]["validation"], single.predictions["validation"]
    assert theirs["idx"] == mine["idx"] and len(mine["idx"]) == 256
    assert sum(a != b for a, b in zip(theirs["predictions"], mine["predictions"])) <= 1


def test_default_loss_is_scaled_by_the_world_size(tmp_path: Path) -> None:
    """Known upstream behaviour (transformers 5.x): sequence-classification heads take **kwargs but ignore
    num_items_in_batch (the root cause of transformers#47688), so under DDP the Trainer multiplies their per-device
    mean loss by the number of processes: the loss and its gradient are WORLD times too large. What the README tells
    torchrun users; this fails once a transformers release stops doing it."""
    tiny = {**SETTINGS, "max_train_samples": 32, "max_eval_samples": 16}  # two steps: the first one is compared
    expected = WORLD if transformers.TrainingArguments(output_dir=str(tmp_path / "x")).average_tokens_across_devices \
        else 1
    single = _single("DefaultLossTrainer", **tiny)
    (ddp,) = _torchrun(tmp_path / "out", "DefaultLossTrainer", **tiny)
    ratio = ddp["trajectory"][0]["loss"] / single.trajectory[0]["loss"]
    assert ratio == pytest.approx(expected, abs=1e-4), json.dumps([single.trajectory[0], ddp["trajectory"][0]])
