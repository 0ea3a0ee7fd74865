"""What the harness costs on top of the plain course walkthrough, measured (`harness overhead`).

The same cell (model, task, rows, hyperparameters) runs as `harness run` and as harness/overhead/walkthrough.py, a
fresh process per side and round, in the order A B B A A B ... so that drift of the machine hits both sides alike.
Per side: the Trainer's train samples/s, the wall seconds from process start to exit (imports, data, model,
tokenization, training, prediction, scoring; for the harness also fingerprinting and writing the record) and the
metric reached, which is equal on both sides when both did the same work. The summary is the harness/plain ratio
of medians with the spread of the per-pair ratios. Fixed costs (imports, model load, tokenization cold and cached)
are timed in a separate process through the harness's own functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig, run_args
from harness.errors import HarnessError

SIDES = ("harness", "plain")
WALKTHROUGH = Path(__file__).with_name("walkthrough.py")


@dataclass
class Contender:
    name: str
    wall_s: list[float] = field(default_factory=list)
    samples_per_second: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    speed_ratio: float  # harness / plain train samples/s, ratio of medians (1.0: no overhead)
    speed_ratios: tuple[float, ...]  # per round
    wall_ratio: float  # plain / harness wall seconds, ratio of medians (1.0: no overhead)
    wall_ratios: tuple[float, ...]
    same_metric: bool  # every round's harness metric equals the plain one (both did the same work)


def order(rounds: int) -> list[str]:
    """A B B A, then B A A B, ...: each side runs first as often as second, and in every position of a pair."""
    out: list[str] = []
    for r in range(rounds):
        pair = list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
        out += pair
    return out


def summarize(harness: Contender, plain: Contender) -> Summary:
    """Ratios of medians and per-round ratios (round i pairs the i-th run of each side)."""
    if not harness.samples_per_second or len(harness.samples_per_second) != len(plain.samples_per_second):
        raise ValueError("both sides need the same number of finished rounds")
    speed = tuple(h / p for h, p in zip(harness.samples_per_second, plain.samples_per_second))
    wall = tuple(p / h for h, p in zip(harness.wall_s, plain.wall_s))
    same = all(math.isclose(h, p, rel_tol=1e-6, abs_tol=1e-9) for h, p in zip(harness.values, plain.values))
    return Summary(statistics.median(harness.samples_per_second) / statistics.median(plain.samples_per_second), speed,
                   statistics.median(plain.wall_s) / statistics.median(harness.wall_s), wall, same)


# ------------------------------------------------------------------------------------------------ the two sides

def warmup_steps(config: RunConfig, train_rows: int) -> int:
    """The warm-up as a step count, which every transformers version takes (5.x has no warmup_ratio): the ratio of
    the planned optimizer steps, rounded up as the Trainer does."""
    from harness.core.build import steps_per_epoch

    if config.warmup_steps is not None:
        return config.warmup_steps
    return math.ceil(math.ceil(config.epochs * steps_per_epoch(config, train_rows)) * (config.warmup_ratio or 0.0))


def export(config: RunConfig, threads: int, folder: Path) -> Path:
    """The cell's rows (as the harness selects them) as JSON lines and its settings, for the plain side."""
    from harness.core import models
    from harness.data.loading import load_task
    from harness.core.build import eval_interval
    from harness.data.tasks import get_task

    task = get_task(config.task)
    if len(task.eval_splits) != 1:
        raise HarnessError(f"harness overhead needs a task with one eval split; {task.name} has "
                           f"{', '.join(task.eval_splits)}")
    data = load_task(task, source=config.source, glue_dir=config.glue_dir, max_train_samples=config.max_train_samples,
                     max_eval_samples=config.max_eval_samples, subset_seed=config.data_seed)
    files = {}
    for split, name in ((task.train_split, "train"), (task.eval_splits[0], "eval")):
        path = folder / f"{name}.jsonl"
        with path.open("w") as out:
            for row in data.splits[split]:
                out.write(json.dumps({**{k: row[k] for k in task.text_keys}, "label": row["label"]}) + "\n")
        files[name] = str(path)
    settings = {"model": models.checkpoint_path(models.get_model(config.model)), "text_keys": list(task.text_keys), "num_labels": task.num_labels,
                "train_file": files["train"], "eval_file": files["eval"], "output_dir": str(folder / "trainer"),
                "threads": threads, "seed": config.seed, "max_length": config.max_length,
                "train_batch_size": config.train_batch_size, "eval_batch_size": config.eval_batch_size,
                "learning_rate": config.learning_rate, "epochs": config.epochs, "weight_decay": config.weight_decay,
                "warmup_steps": warmup_steps(config, len(data.splits[task.train_split])),
                "group_by_length": config.group_by_length,
                "eval_steps": eval_interval(config, len(data.splits[task.train_split]))}
    path = folder / "settings.json"
    path.write_text(json.dumps(settings, indent=1))
    return path


RUN_CONFIGS = "run-configs.json"  # the harness side's cell, in its round's folder


def harness_command(config: RunConfig, threads: int, output: Path) -> list[str]:
    """`harness run` for exactly this cell, its RunConfig handed over in the round's folder `output`."""
    return [sys.executable, *run_args([config], Path(output) / RUN_CONFIGS, threads=threads, output=Path(output))]


def _run(command: Sequence[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise HarnessError(f"{' '.join(command[:4])} ... failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout


def run_harness_side(config: RunConfig, threads: int, folder: Path) -> tuple[float, float, float]:
    from harness.core.record import RunRecord
    from harness.store.results import find_records, read_record

    output = Path(tempfile.mkdtemp(prefix="harness-", dir=folder))
    wall, _ = _run(harness_command(config, threads, output))
    found = find_records(output)
    if len(found) != 1:
        raise HarnessError(f"harness run wrote {len(found)} records in {output}, expected one")
    record = RunRecord.from_dict(read_record(found[0]))
    if not record.ok:
        raise HarnessError(f"harness run failed: {record.error}")
    return wall, float(record.timings["train_samples_per_second"]), float(record.primary() or math.nan)


def run_plain_side(settings: Path) -> tuple[float, float, float, dict[str, float]]:
    wall, out = _run([sys.executable, str(WALKTHROUGH), str(settings)])
    result = json.loads(out.strip().splitlines()[-1])
    return wall, float(result["train_samples_per_second"]), float(result["value"]), result["phases"]


def measure(config: RunConfig, *, rounds: int, threads: int, folder: Path,
            progress: Any = print) -> tuple[Contender, Contender, list[dict[str, float]]]:
    """Interleaved rounds of both sides; also the plain side's phase times per run."""
    config = dataclasses.replace(config, device="cpu")  # where the plain side trains
    settings = export(config, threads, folder)
    sides = {name: Contender(name) for name in SIDES}
    phases: list[dict[str, float]] = []
    for i, name in enumerate(order(rounds), 1):
        if name == "harness":
            wall, speed, value = run_harness_side(config, threads, folder)
        else:
            wall, speed, value, times = run_plain_side(settings)
            phases.append(times)
        side = sides[name]
        side.wall_s.append(wall)
        side.samples_per_second.append(speed)
        side.values.append(value)
        progress(f"  [{i}/{2 * rounds}] {name:7s} wall {wall:6.1f} s, train {speed:7.2f} samples/s, "
                 f"{config.task} {value:.4f}")
    return sides["harness"], sides["plain"], phases


# ------------------------------------------------------------------------------------------------ fixed costs

FIXED_COSTS_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from harness.core import build, models
from harness.core.config import RunConfig
from harness.data.loading import load_task
from harness.data.featurize import featurize
from harness.data.tasks import get_task
out = {"imports": time.perf_counter() - t0}
config = RunConfig(**json.loads(sys.argv[1]))
task = get_task(config.task)
t = time.perf_counter()
data = load_task(task, source=config.source, glue_dir=config.glue_dir, max_train_samples=config.max_train_samples,
                 max_eval_samples=config.max_eval_samples, subset_seed=config.data_seed)
out["data"] = time.perf_counter() - t
t = time.perf_counter()
loaded = build.load_model(config, models.get_model(config.model), task)
out["model_load"] = time.perf_counter() - t
with tempfile.TemporaryDirectory() as cache:
    for name in ("tokenize_cold", "tokenize_cached"):
        t = time.perf_counter()
        featurize(data, loaded.tokenizer, max_length=config.max_length, cache_dir=Path(cache))
        out[name] = time.perf_counter() - t
print(json.dumps(out))
"""


def fixed_costs(config: RunConfig) -> dict[str, float]:
    """Seconds of the harness's fixed steps in a fresh process: imports, data, model load, tokenization (cold: an
    empty cache; cached: the same call again)."""
    _, out = _run([sys.executable, "-c", FIXED_COSTS_CHILD, json.dumps(dataclasses.asdict(config))])
    return json.loads(out.strip().splitlines()[-1])
