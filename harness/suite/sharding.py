"""Split a matrix across machines: `--harness-shard I/N` and `harness run --shard I/N`.

The split is a pure function of the cells and the committed baselines (nothing a machine caches or measured
locally), so every machine given the same options, data and checkout computes the same one. The unit is a cell
group (task x model, all its seeds): the quality judge compares a group's seeds together, so a shard's verdicts
equal the unsharded run's for the same groups. Groups go to shards by
expected cost, longest first, each to the least loaded shard (LPT). A group's cost is the baseline's training
seconds of its cells, scaled by how much more or less work the cell's config asks for than the baseline's did; a
cell without a baseline gets a cost model (training examples x epochs x a per-model factor) converted to seconds at
the median rate of the cells that have one.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")

# Relative cost of one example through a model kind: tiny random models run ~30x faster per example than MiniLM
# (the packaged checkpoint); hub and local checkpoints are priced as base-sized encoders, whose matrix products per
# token (12 layers x 768^2) are 8x MiniLM's (6 x 384^2). By kind, not from each checkpoint's config.json: a hub
# config is in one machine's cache and not in another's, and the split must not depend on a cache.
MODEL_FACTOR: Mapping[str, float] = {"tiny": 1.0, "packaged": 30.0, "hub": 240.0, "local": 240.0}
UNKNOWN_ROWS = (10000, 1000)  # a user task (its size is known once read): priced as a mid-size GLUE task
BACKWARD = 2.0  # a training example costs a forward and a backward pass (~2 forwards); an eval example one forward


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, numbered from 1 (as CI job matrices count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """"I/N" with whole numbers 1 <= I <= N; HarnessError saying what is allowed otherwise."""
    index, sep, count = str(text).strip().partition("/")
    usage = "expected I/N: this machine's shard I of N, whole numbers 1 <= I <= N (1/2 and 2/2 split the matrix in two)"
    if not (sep and index.strip().isdigit() and count.strip().isdigit()):
        raise HarnessError(f"shard {text!r}: {usage}.")
    shard = Shard(int(index), int(count))
    if shard.count < 1:
        raise HarnessError(f"shard {text!r}: N must be at least 1; {usage}.")
    if not 1 <= shard.index <= shard.count:
        raise HarnessError(f"shard {text!r}: I must be from 1 to {shard.count} (shards are numbered from 1); {usage}.")
    return shard


# ------------------------------------------------------------------------------------------------ cost

def work_units(config: Any) -> float:
    """Relative work of a cell from its config (a RunConfig or a record's config dict): examples trained x epochs
    x 2 plus examples evaluated x evaluations, times the model's factor."""
    from harness.core.models import get_model
    from harness.data.tasks import get_task

    get = config.get if isinstance(config, Mapping) else lambda name: getattr(config, name, None)
    task = get_task(str(get("task")))
    if task.sizes:  # every task but a user's (TaskSpec refuses one without)
        rows = (task.sizes[task.train_split], sum(task.sizes[s] for s in task.eval_splits))
    else:
        rows = UNKNOWN_ROWS
    train = min(rows[0], get("max_train_samples") or rows[0])
    evals = min(rows[1], get("max_eval_samples") or rows[1])
    epochs = float(get("epochs") or 1.0)
    passes = epochs * int(get("evals_per_epoch") or 1) + 1  # evaluations during training, then predict()
    try:
        kind = get_model(str(get("model"))).kind
    except HarnessError:  # a model folder that is gone: price it as a base-size checkpoint
        kind = "local"
    return MODEL_FACTOR.get(kind, MODEL_FACTOR["local"]) * (train * epochs * BACKWARD + evals * passes)


def baseline_seconds(root: Path | str, tiers: Iterable[str]) -> dict[str, tuple[float, dict[str, Any]]]:
    """cell id -> (training seconds, config) from the committed quality baselines <root>/<tier>/any/*.json, the
    first of `tiers` that has the cell winning. Unreadable files are skipped: costs only steer the balance."""
    from harness.store.baselines import read_baseline

    found: dict[str, tuple[float, dict[str, Any]]] = {}
    for tier in tiers:
        for path in sorted((Path(root) / tier / "any").glob("*.json")):
            try:
                record = (read_baseline(path) or {})["record"]
                found.setdefault(str(record["cell"]), (float(record["timings"]["train_wall_s"]),
                                                       dict(record["config"])))
            except (HarnessError, KeyError, TypeError, ValueError):
                continue
    return found


def cell_costs(configs: Sequence[Any], baselines: Mapping[str, tuple[float, Mapping[str, Any]]]) -> list[float]:
    """Expected seconds per config (in order): a baseline's seconds scaled by work(config) / work(its config);
    without a baseline, work(config) at the median seconds-per-unit of those with one (1 when none has one)."""
    units = [work_units(c) for c in configs]
    scaled: list[float | None] = []
    rates = []
    for config, work in zip(configs, units):
        known = baselines.get(config.cell_id)
        if known is None:
            scaled.append(None)
            continue
        seconds, reference = known
        reference_work = work_units(reference)
        scaled.append(seconds * work / reference_work if reference_work > 0 else seconds)
        if work > 0:
            rates.append(scaled[-1] / work)
    rate = statistics.median(rates) if rates else 1.0
    return [s if s is not None else w * rate for s, w in zip(scaled, units)]


# ------------------------------------------------------------------------------------------------ the split

def assign(costs: Mapping[str, float], count: int) -> dict[str, int]:
    """Unit -> shard (1..count): longest first (ties by name), each to the least loaded shard (ties: lowest)."""
    loads = [0.0] * count
    out = {}
    for unit, cost in sorted(costs.items(), key=lambda kv: (-kv[1], kv[0])):
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += cost
        out[unit] = target + 1
    return out


def select(items: Sequence[T], shard: Shard, *, unit: Callable[[T], str], cost: Sequence[float]) -> list[T]:
    """The items of `shard`, in their original order; items of one unit always land in the same shard."""
    totals: dict[str, float] = {}
    for item, seconds in zip(items, cost, strict=True):
        totals[unit(item)] = totals.get(unit(item), 0.0) + seconds
    owner = assign(totals, shard.count)
    return [item for item in items if owner[unit(item)] == shard.index]


def shard_configs(configs: Sequence[T], shard: Shard, baselines_root: Path | str | None,
                  tiers: Iterable[str], *, unit: Callable[[T], str] | None = None,
                  config: Callable[[T], Any] | None = None) -> list[T]:
    """The configs (or cells, with `config` to reach each one's RunConfig) of `shard`, balanced on baselines
    under `baselines_root` (None: the cost model alone)."""
    to_config = config or (lambda item: item)
    known = baseline_seconds(baselines_root, tiers) if baselines_root is not None else {}
    costs = cell_costs([to_config(c) for c in configs], known)
    return select(configs, shard, unit=unit or (lambda item: to_config(item).group), cost=costs)
