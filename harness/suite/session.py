"""One suite session: the selected matrix, each cell fine-tuned once, measurements, then the judging pipeline.

Knows nothing of pytest: the plugin turns options into `SessionOptions` and hooks into calls. Verdicts come from
harness.judging.registry, the same pipeline `harness compare` uses; files go through harness.store. torch (runner,
throughput) and scipy (the judges) are imported when first needed, so collecting tests stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.suite import matrix, sharding
from harness.core import distributed
from harness.core.record import RunRecord
from harness.errors import HarnessError
from harness.core.evidence import Evidence, Measurement
from harness.judging.eval_set import EvalSetJudge
from harness.judging.judge import JudgeSettings
from harness.judging.quality import QualityJudge
from harness.judging.throughput import ThroughputJudge
from harness.judging.verdict import Verdict, regressions
from harness.suite.matrix import Cell, Selection, Tier
from harness.reporting import render
from harness.suite.sharding import Shard
from harness.store import baselines, results
from harness.store.recordsets import write_measurement

VERDICTS_NAME = "verdicts.md"


@dataclass(frozen=True)
class SessionOptions:
    tiers: frozenset[str] = frozenset({"smoke"})
    selection: Selection = Selection()
    baseline_root: Path = Path("results/baselines")
    record_root: Path | None = Path("results")  # None: write nothing
    markdown: Path | None = None  # default: <record_root>/verdicts.md
    update_baselines: bool = False
    threads: int | None = None  # torch CPU threads; 0: torch's default; None: each tier's own (Tier.threads)
    judging: JudgeSettings = JudgeSettings()
    shard: Shard | None = None  # run only this shard's cell groups (harness.suite.sharding)
    finetune: Any = None  # harness.finetune.FineTune: your fine-tuning (the `yours` tier, defect triggers)

    @property
    def verdicts_markdown(self) -> Path | None:
        if self.markdown:
            return self.markdown
        return self.record_root / VERDICTS_NAME if self.record_root else None


class CellFailed(HarnessError):
    """A cell of this session could not be fine-tuned (reported by every test that uses it)."""


@dataclass
class _Expected:
    """What the tests registered for judging, per tier: records per kind, throughput measurements."""

    records: dict[str, dict[str, RunRecord]] = field(default_factory=dict)  # kind -> cell id -> record
    measurements: dict[str, Measurement] = field(default_factory=dict)  # group -> merged measurement


class SuiteSession:
    """Everything one suite session knows: options, the matrix, finished cells, measurements, verdicts."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self._runs: dict[Any, RunRecord] = {}
        self._expected: dict[str, _Expected] = {}
        self.verdicts: list[Verdict] = []
        self.known_defects: list[str] = []  # of the installed transformers, shown under the verdict table
        self.written: list[Path] = []
        self._default_threads: int | None = None  # torch's own, read before the session first changes it
        self.concluded = False
        self._shard_groups: set[tuple[str, str]] | None = None

    # -- matrix --------------------------------------------------------------------------------------------------
    @property
    def your_configs(self) -> tuple[Any, ...]:
        """Your fine-tuning's RunConfigs (none without a config): the training suite checks its defects' triggers
        against them and draws cases around them."""
        return tuple(self.options.finetune.configs) if self.options.finetune is not None else ()

    @property
    def your_training_arguments(self) -> Any:
        """The TrainingArguments your fine-tuning was written with (None without a config): what a defect's
        trigger reads beyond the cells (saving checkpoints you may resume from)."""
        return self.options.finetune.training_arguments if self.options.finetune is not None else None

    def cells(self, tier: str) -> list[Cell]:
        return self._in_shard(tier, matrix.cells(tier, self.options.selection))

    def bench_cells(self, tier: str) -> list[Cell]:
        return self._in_shard(tier, matrix.bench_cells(tier, self.options.selection))

    def cell_units(self) -> dict[str, str]:
        """Test parameter id (a cell id) -> "<tier>/<group>": what pytest-xdist keeps on one worker."""
        return {cell.id: f"{cell.tier}/{cell.group}" for tier in sorted(matrix.TIERS)
                for cell in [*self.cells(tier), *self.bench_cells(tier)]}

    def _in_shard(self, tier: str, cells: list[Cell]) -> list[Cell]:
        """With a shard: the cells whose group it owns. The split covers the tiers that run in this session
        (enabled, not skipped); a tier that does not run keeps all its cells, which are skipped anyway."""
        if self.options.shard is None or tier not in self._running_tiers():
            return cells
        if self._shard_groups is None:
            everything = [c for t in self._running_tiers() for c in matrix.cells(t, self.options.selection)]
            mine = sharding.shard_configs(everything, self.options.shard, self.options.baseline_root,
                                          self._running_tiers(), unit=lambda c: f"{c.tier}/{c.group}",
                                          config=lambda c: c.config)
            self._shard_groups = {(c.tier, c.group) for c in mine}
        return [c for c in cells if (c.tier, c.group) in self._shard_groups]

    def _running_tiers(self) -> list[str]:
        return sorted(t for t in self.options.tiers if t in matrix.TIERS and self.skip_reason(matrix.TIERS[t]) is None)

    def skip_reason(self, tier: Tier) -> str | None:
        if tier.name == matrix.YOURS and self.options.finetune is None:
            return ("no fine-tuning of yours: pass --harness-config FILE, or put harness.toml or [tool.harness] in "
                    "pyproject.toml where pytest starts (see examples/finetune/)")
        if tier.name not in self.options.tiers:
            how = "-m slow" if tier.name == "gpu" else f"-m {tier.name}"
            return f"{tier.name} tier is opt-in: run with {how} or --harness-tiers {tier.name}"
        if tier.needs_glue and not self.options.selection.glue_dir and not self.options.selection.tasks:
            return f"{tier.name} tier needs GLUE data: set GLUE_DIR or --harness-glue-dir DIR"
        if tier.needs_cuda and not _cuda():
            return f"{tier.name} tier needs a CUDA device; torch sees none"
        return None

    # -- running -------------------------------------------------------------------------------------------------
    def _set_threads(self, tier: str) -> None:
        """The session's thread count, else the tier's; 0 restores torch's own default (all cores)."""
        import torch

        if self._default_threads is None:
            self._default_threads = torch.get_num_threads()
        wanted = self.options.threads if self.options.threads is not None else matrix.get_tier(tier).threads
        wanted = wanted or self._default_threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def fine_tune(self, cell: Cell) -> RunRecord:
        """The cell's run record; the first call fine-tunes, later calls (any test) reuse it."""
        from harness.core import runner

        if cell.config not in self._runs:
            self._set_threads(cell.tier)
            record = runner.run_cell(cell.config)
            self._runs[cell.config] = record
            if self.options.record_root and distributed.is_main_process():
                self.written.append(results.write_record(record, self.options.record_root))
        found = self._runs[cell.config]
        if not found.ok:
            raise CellFailed(f"{cell.id} could not be fine-tuned: {found.error}")
        return found

    def expect(self, kind: str, cell: Cell, record: RunRecord) -> None:
        """Judge `record` for verdict kind `kind` ("quality", "convergence") at the end of the session."""
        self._expected.setdefault(cell.tier, _Expected()).records.setdefault(kind, {})[cell.id] = record

    def measure(self, cell: Cell, part: str, benchmark: Any = None, callbacks: tuple[Any, ...] = ()) -> dict:
        """Time training steps ("train") or prediction batches ("eval") of a cell, through pytest-benchmark's
        pedantic mode when `benchmark` is given; registers the result for the throughput verdict."""
        from harness.core import throughput

        self._set_threads(cell.tier)
        settings = matrix.get_tier(cell.tier).bench
        bench: Any
        if part == "train":
            bench = throughput.TrainBench(cell.config, steps=settings.steps, warmup=settings.warmup,
                                          callbacks=callbacks)
            target = bench.train_round
        else:
            bench = throughput.EvalBench(cell.config, eval_samples=settings.eval_samples, callbacks=callbacks)
            target = bench.eval_round
        if benchmark is not None:
            benchmark.pedantic(target, setup=bench.setup, rounds=settings.rounds, iterations=1)
        else:
            for _ in range(settings.rounds):
                args, _ = bench.setup()
                target(*args)
        result = bench.result()
        context = throughput.measurement_context(cell.config, bench.prepared)
        measured = Measurement(group=cell.group, device_class=context["env"]["device_class"], context=context,
                               parts={part: result}, measured_at=baselines.now_iso())
        found = self._expected.setdefault(cell.tier, _Expected()).measurements
        found[cell.group] = found[cell.group].merged(measured) if cell.group in found else measured
        if benchmark is not None:
            benchmark.extra_info.update({f"{part}_median_seconds": result.get("median_step_seconds",
                                                                              result.get("median_batch_seconds")),
                                         f"{part}_samples_per_second": result["samples_per_second"],
                                         f"{part}_tokens_per_second": result["tokens_per_second"]})
        if self.options.record_root and distributed.is_main_process():
            stamp = measured.measured_at.replace(":", "").replace("-", "").replace("+0000", "Z")
            self.written.append(write_measurement(self.options.record_root, cell.tier, part, measured, stamp,
                                                  str(os.getpid())))
        return result

    # -- judging -------------------------------------------------------------------------------------------------
    def judge(self) -> list[Verdict]:
        """Every verdict of this session: per tier, what the tests registered against that tier's baselines."""
        from harness.judging import registry

        verdicts = []
        for tier, expected in sorted(self._expected.items()):
            reference = baselines.load(self.options.baseline_root, tier)
            kinds, evidence = _evidence_and_kinds(expected)
            verdicts += registry.judge(evidence, reference, self.options.judging, kinds=kinds)
        return verdicts

    def update_baselines(self) -> list[Path]:
        """Rewrite the baselines of the cells this session ran (and only those)."""
        from harness.judging import registry

        written = []
        for tier, expected in sorted(self._expected.items()):
            kinds, evidence = _evidence_and_kinds(expected)
            payloads = baselines.payloads(registry.baseline_items(evidence, kinds), tier)
            written += [p for p in baselines.write_payloads(self.options.baseline_root, payloads) if p not in written]
        return written

    def conclude(self, extra: Sequence[Verdict] = (), *, write: bool = True) -> list[Verdict]:
        """Judge, then (if asked) update baselines and write the markdown/JSON table. Runs once; under pytest-xdist
        in the controller, over what every worker registered (`absorb`)."""

        if self.concluded:
            return self.verdicts
        self.concluded = True
        self.verdicts = self.judge() + list(extra)
        if self.verdicts:
            from harness.invariants import defects  # imports transformers: only once something was judged

            version, found = defects.installed()
            self.known_defects = [f"transformers {version}: {d}" for d in found]
        write = write and distributed.is_main_process()  # under torchrun, rank 0 writes
        if self.options.update_baselines and write:
            self.written += self.update_baselines()
        target = self.options.verdicts_markdown
        if write and target and self.verdicts:
            self.written += render.write_tables(self.verdicts, target, known_defects=self.known_defects,
                                                baselines=str(self.options.baseline_root),
                                                updated=self.options.update_baselines)
        return self.verdicts

    def failing(self) -> bool:
        return bool(regressions(self.verdicts)) and not self.options.update_baselines

    # -- pytest-xdist: workers hand what they registered to the controller, which judges it all at once ----------
    def export(self) -> dict[str, Any]:
        """What the tests registered, as JSON-safe data (sent from a pytest-xdist worker to the controller)."""
        from harness.base.jsonfile import json_safe

        return json_safe({tier: {"records": {kind: {cell: r.to_dict() for cell, r in found.items()}
                                             for kind, found in expected.records.items()},
                                 "measurements": [{**m.to_dict(), "measured_at": m.measured_at}
                                                  for m in expected.measurements.values()]}
                          for tier, expected in self._expected.items()})

    def absorb(self, exported: dict[str, Any]) -> None:
        """Add a worker's `export()` to what this session judges."""
        for tier, payload in exported.items():
            expected = self._expected.setdefault(tier, _Expected())
            for kind, found in payload["records"].items():
                expected.records.setdefault(kind, {}).update(
                    {cell: RunRecord.from_dict(r) for cell, r in found.items()})
            for item in payload["measurements"]:
                measured = Measurement.from_dict(item)
                known = expected.measurements.get(measured.group)
                expected.measurements[measured.group] = known.merged(measured) if known else measured


def _evidence_and_kinds(expected: _Expected) -> tuple[tuple[str, ...], Evidence]:
    """One evidence set and the kinds its tests asked for (quality brings the eval-set check along)."""
    kinds = set(expected.records)
    if QualityJudge.kind in kinds:
        kinds.add(EvalSetJudge.kind)
    if expected.measurements:
        kinds.add(ThroughputJudge.kind)
    records = {cell: r for found in expected.records.values() for cell, r in found.items()}
    return tuple(sorted(kinds)), Evidence(records=list(records.values()),
                                          measurements=list(expected.measurements.values()))


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
