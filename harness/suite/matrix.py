"""The matrix, built in one place: tiers (which models x tasks x seeds, with which settings) and the cells they make.

Declarative like the task registry: a tier overrides only what differs from its base preset. Every value here ends
up in each run's recorded config, so a baseline says exactly what produced it. `cells(tier, selection)` is used by
the pytest plugin and by `harness run --tier`, so both fine-tune exactly the same configurations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.core.config import RunConfig, make_config
from harness.base.registry import Registry
from harness.errors import HarnessError
from harness.data.tasks import get_task


@dataclass(frozen=True)
class Bench:
    """Throughput measurement: `rounds` fresh Trainer runs of `steps` optimizer steps; the first `warmup` steps of
    each round are excluded. Eval: `rounds` predict() passes over at most `eval_samples` rows, first batch excluded."""

    rounds: int = 5
    steps: int = 40
    warmup: int = 5
    eval_samples: int = 512
    tasks: tuple[str, ...] | None = None  # tasks whose cells are timed; None: every task of the tier


@dataclass(frozen=True)
class Tier:
    name: str  # also its pytest marker
    description: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    preset: str
    seeds: Mapping[str, tuple[int, ...]]  # per task; "*" for the rest
    overrides: Mapping[str, Any] = field(default_factory=dict)  # RunConfig fields for every cell
    task_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bench: Bench = Bench()
    needs_glue: bool = False  # tasks come from GLUE_DIR; only the tasks present there run
    needs_cuda: bool = False
    precisions: tuple[str, ...] = ("fp32",)  # each cell runs in each; a precision override picks one
    markers: tuple[str, ...] = ()  # extra markers on its tests (the tier's own name is always one)
    threads: int = 1  # torch CPU threads its cells run on unless the user sets them; 0: all the machine's cores

    def seeds_for(self, task: str) -> tuple[int, ...]:
        return self.seeds.get(task, self.seeds["*"])

    def settings(self, task: str) -> dict[str, Any]:
        return {**self.overrides, **self.task_overrides.get(task, {})}


YOURS = "yours"
TIERS: Registry[Tier] = Registry("tier", (
    Tier(
        name="smoke", description="tiny random models x built-in tasks; ~2-3 minutes on a 2-core CPU",
        models=("tiny-bert", "tiny-roberta"), tasks=("syn-mrpc", "syn-sst2", "syn-stsb"), preset="smoke",
        seeds=MappingProxyType({"*": (0,)}), overrides=MappingProxyType({"evals_per_epoch": 2}),
        # syn-mrpc at the tiny preset's lr 1e-3 left tiny-roberta on the majority class (acc 0.543 at all 12 evals);
        # 2e-3 lifts it to 0.816 (tiny-bert 0.809 -> 0.850) in the same ~17 s per cell.
        task_overrides=MappingProxyType({"syn-mrpc": {"learning_rate": 2e-3}}),
        bench=Bench(rounds=5, steps=40, warmup=5, eval_samples=512)),
    # Sized by measurement to learn every task clearly above its trivial answer in ~12.5 min on 2 quiet cores, from
    # MiniLM's learning curves with full training sets (results/glue-curves/README.md) and CPU runs: STS-B passes
    # 0.80 Pearson after ~1-1.25 epochs, SST-2 0.85 after ~12-16k sentences, CoLA 0.25 MCC only after 2 epochs at
    # lr 5e-5 (0 before ~8k sentences); MRPC 0.78 after 2 epochs (0.760 after 1.5: a collapse to its majority
    # class, 0.684, would then be within the one-seed noise band). RTE tops out at 0.57 after five full epochs and
    # WNLI ends below its majority class, so neither can show a collapse: they stay in the gpu tier only. lr 1e-4 held constant after 10 % warm-up: a linear decay over such short
    # runs stops learning early (STS-B 0.674 vs 0.800, same examples). Batches grouped by length (STS-B 68 vs 27
    # samples/s on 2 cores) except MRPC, where grouped batches ended on the majority class (0.681 vs 0.772).
    # MRPC: batch 16, lr 5e-5 decaying linearly over its 2 epochs: accuracy 0.804, F1 0.865 (batch 32 at lr 1e-4
    # constant: 0.789 / F1 0.849; 3 epochs of that: 0.779 / 0.845; batch 32 at lr 5e-5 linear: 0.730 / 0.830),
    # measured on a 2-core Intel Xeon, where the whole tier takes 8.4 min end to end (MRPC 3.5 of them).
    # Both cores; one seed each (a second MRPC seed costs ~3.5 min on that Xeon, ~5 on the AMD EPYC).
    Tier(
        name="glue", description="MiniLM x SST-2, STS-B, MRPC, CoLA from GLUE_DIR; learns each (8.4 min on 2 Xeon cores)",
        models=("minilm",), tasks=("sst2", "stsb", "mrpc", "cola"), preset="run_glue",
        seeds=MappingProxyType({"*": (0,)}),
        overrides=MappingProxyType({"epochs": 1.0, "evals_per_epoch": 2, "learning_rate": 1e-4, "warmup_ratio": 0.1,
                                    "lr_scheduler_type": "constant_with_warmup", "weight_decay": 0.01,
                                    "train_batch_size": 32, "eval_batch_size": 64, "group_by_length": True}),
        task_overrides=MappingProxyType({
            "sst2": {"max_train_samples": 16000}, "stsb": {"epochs": 1.25},
            "mrpc": {"epochs": 2.0, "group_by_length": False, "evals_per_epoch": 1, "train_batch_size": 16,
                     "learning_rate": 5e-5, "lr_scheduler_type": "linear"},
            "cola": {"epochs": 2.0, "learning_rate": 5e-5}}),
        bench=Bench(rounds=3, steps=6, warmup=2, eval_samples=128, tasks=("mrpc",)), needs_glue=True, threads=0),
    # The nightly GPU run: full checkpoints x the nine GLUE tasks x three precisions with run_glue's hyperparameters
    # (5 epochs for MRPC and WNLI, as its published results); five seeds where a task swings by points between
    # seeds (the small ones), one on the large ones. Needs CUDA and the checkpoints in the HF cache.
    Tier(
        name="gpu", description="full checkpoints x the nine GLUE tasks x fp32/fp16/bf16, nightly preset; needs CUDA",
        models=("bert-base-cased", "roberta-base", "distilbert-base-uncased", "google-bert/bert-large-cased"),
        tasks=("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"), preset="nightly",
        seeds=MappingProxyType({**{task: (0, 1, 2, 3, 4) for task in ("cola", "rte", "mrpc", "stsb", "wnli")},
                                "*": (0,)}),
        overrides=MappingProxyType({"device": "cuda"}),
        task_overrides=MappingProxyType({"mrpc": {"epochs": 5.0}, "wnli": {"epochs": 5.0}}),
        bench=Bench(rounds=5, steps=30, warmup=5, eval_samples=1024, tasks=("mrpc", "sst2")), needs_glue=True,
        needs_cuda=True, markers=("slow",), precisions=("fp32", "fp16", "bf16")),
    # Your fine-tuning (harness.finetune): the cells of a config file, run next to the other tiers' when one is given
    # (--config, --harness-config) or found (harness.toml, [tool.harness]). Its settings are the file's, not a
    # preset's; its baselines are the ones you accept with --harness-update-baselines.
    Tier(
        name=YOURS, description="your fine-tuning: the cells of --harness-config, harness.toml or [tool.harness]",
        models=(), tasks=(), preset="smoke", seeds=MappingProxyType({"*": (0,)}),
        bench=Bench(rounds=5, steps=20, warmup=5, eval_samples=256)),
))
TIER_MARKERS = frozenset(TIERS) | {"slow"}  # "slow" selects the gpu tier too


def get_tier(name: str) -> Tier:
    return TIERS[name]  # a miss: UnknownNameError with a did-you-mean


def glue_tasks_present(tasks: Sequence[str], glue_dir: str | os.PathLike | None) -> tuple[str, ...]:
    """The tasks whose GLUE folder has train and dev files (QNLI ships dev/test only here, so it is left out)."""
    if glue_dir is None:
        return tuple(tasks)
    root = Path(glue_dir).expanduser()
    present = []
    for name in tasks:
        folder = root / (get_task(name).glue_dir_name or name)
        if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
            present.append(name)
    return tuple(present)


@dataclass(frozen=True)
class Selection:
    """What the user narrowed or changed on top of a tier (None: the tier's own)."""

    models: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    preset: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)  # RunConfig fields for every cell
    glue_dir: str | None = None
    yours: tuple[RunConfig, ...] = ()  # your fine-tuning's cells: the `yours` tier


@dataclass(frozen=True)
class Cell:
    """One parametrization: a tier and the RunConfig it fine-tunes."""

    tier: str
    config: RunConfig

    @property
    def id(self) -> str:
        return self.config.cell_id

    @property
    def group(self) -> str:
        return self.config.group

    def __str__(self) -> str:
        return self.id


def cells(tier_name: str, selection: Selection = Selection()) -> list[Cell]:
    """Every cell of a tier: tasks x models x precisions x seeds, with the tier's settings and the selection's
    overrides."""
    tier = get_tier(tier_name)
    if tier.name == YOURS:
        return [Cell(YOURS, _overridden(config, selection.overrides)) for config in selection.yours]
    tasks = selection.tasks or (glue_tasks_present(tier.tasks, selection.glue_dir) if tier.needs_glue
                                else tier.tasks)
    # a precision chosen for the run (--precision, --harness-override precision=...) replaces the tier's axis
    precisions = (selection.overrides["precision"],) if selection.overrides.get("precision") else tier.precisions
    out = []
    for task in tasks:
        glue = get_task(task).benchmark == "glue"
        for model, precision in ((m, p) for m in selection.models or tier.models for p in precisions):
            for seed in selection.seeds or tier.seeds_for(task):
                settings = {**tier.settings(task), "precision": precision, **selection.overrides}
                if glue:
                    settings.setdefault("glue_dir", selection.glue_dir)
                out.append(Cell(tier.name, make_config(model, task, seed=seed, preset=selection.preset or tier.preset,
                                                       **settings)))
    distinct([c.config for c in out])
    return out


def distinct(configs: Sequence[RunConfig]) -> None:
    """Refuses two configs with one cell id (two task files with the same `name`, two checkpoint folders with the
    same folder name): their records and verdicts would be mistaken for each other's."""
    seen: dict[str, RunConfig] = {}
    for config in configs:
        other = seen.setdefault(config.cell_id, config)
        if other is not config:
            raise HarnessError(f"two cells would both be {config.cell_id}: tasks {other.task!r} and {config.task!r}, "
                               f"models {other.model!r} and {config.model!r}. Give each task file its own `name` "
                               "(and each checkpoint folder its own folder name).")


def _overridden(config: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """A config of yours with the session's overrides (e.g. max_train_samples for a quick look), validated."""
    if not overrides:
        return config
    import dataclasses

    from harness.core.config import validate

    changed = dataclasses.replace(config, **overrides)
    validate(changed)
    return changed


def bench_cells(tier_name: str, selection: Selection = Selection()) -> list[Cell]:
    """One cell per task x model (throughput does not depend on the seed): the first seed's."""
    bench = get_tier(tier_name).bench
    seen, out = set(), []
    for cell in cells(tier_name, selection):
        if bench.tasks is not None and not selection.tasks and cell.config.task not in bench.tasks:
            continue
        if cell.group not in seen:
            seen.add(cell.group)
            out.append(cell)
    return out
