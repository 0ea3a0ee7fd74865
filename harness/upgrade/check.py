"""`harness upgrade-check`: the old and the new environment on one machine, stage by stage, one report.

Stages, in order (each judged before the next starts, so `fail_fast` stops at the first regression):
  preflight   API signatures diffed, the course walkthrough's deprecation warnings on each side, a user's script
              checked against the new API (seconds);
  contracts   `pytest suites/ -m "contract or training"` on both sides, outcome by outcome; then the known defects
              that reproduced on each side (defects): one new on the new side is a regression where your settings
              trigger it (or where no settings were given), a warning where they do not; one gone is fixed;
  trajectory  the tier's cells and yours (a config file) on both sides with the same seeds and data, first K
              optimizer steps compared;
  quality     the same runs judged as `harness compare` judges them (paired per example, per seed);
  throughput  interleaved A/B rounds in one worker pair (abtest.py).
The two sides run side by side (one thread each) wherever timing does not matter; throughput runs alone.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.base.registry import Registry
from harness.errors import HarnessError
from harness.upgrade import processes
from harness.upgrade.cache import Cache
from harness.upgrade.processes import both, json_of, run_in
from harness.upgrade.sidework import Found, Plan, SideWork
from harness.upgrade.sides import Side

OK, CHANGED, REGRESSED, ERROR = "ok", "changed", "regressed", "error"
FAILING = (REGRESSED, ERROR)
SUITE_MARKER = "contract or training"


@dataclass(frozen=True)
class Stage:
    """One stage of the check: what it tells, how it makes its report sections from a `StageRun`, and the figures
    (HTML plots) of a section it made. Stages run in registration order."""

    name: str
    describe: str  # one line, for --help
    make: Callable[[StageRun], Section | list[Section]]
    figures: Callable[[Section], list[str]] = lambda section: []


@dataclass
class StageRun:
    """What a stage works from: both sides, the options, the output folder, and each side's work (begun in the
    background when the check starts); `found` also notes which results each stage used, and whence."""

    sides: Sequence[Side]
    opts: CheckOptions
    out: Path
    progress: Callable[[str], None] = print
    works: Sequence[SideWork] = ()
    stage: str = ""  # the stage running now
    used: dict[str, dict[str, list[Found]]] = field(default_factory=dict)  # stage -> side -> results

    def found(self, name: str) -> list[Found]:
        """Both sides' result `name` (waiting for them), old side first."""
        results = [work.get(name) for work in self.works]
        for work, result in zip(self.works, results):
            self.used.setdefault(self.stage, {}).setdefault(work.side.name, []).append(result)
        return results

    def tier_runs(self) -> list[tuple[list, list]]:
        """Per side: the records of the tier's cells and yours, and the pair of noise-floor runs (if made)."""
        runs = self.found("runs")
        twins = self.found("replicates") if "replicates" in self.works[0].plan.results else [None] * len(runs)
        return [(r.value, t.value if t is not None else []) for r, t in zip(runs, twins)]

    def sources(self, stage: str) -> dict[str, str]:
        """Side -> where the stage's results came from: "cache (made ...)", the seconds they took, or both."""
        out = {}
        for side, results in self.used.get(stage, {}).items():
            cached = sorted({r.made for r in results if r.made})
            fresh = sum(r.seconds for r in results if not r.made)
            parts = [f"{fresh:.0f} s"] if any(not r.made for r in results) else []
            parts += [f"cache ({cached[0]})"] if cached else []
            out[side] = " + ".join(parts)
        return out


STAGES: Registry[Stage] = Registry("stage", (
    Stage("preflight", "API signatures, deprecation warnings of the course walkthrough, your script's keywords",
          lambda run: preflight(run)),
    Stage("contracts", "pytest suites/ -m 'contract or training' on both sides, and the known defects each reproduces",
          lambda run: contracts(run)),
    Stage("trajectory", "the first optimizer steps of the tier's cells and yours, same seed and data",
          lambda run: trajectory_section(run.tier_runs()), lambda section: _trajectory_figures(section)),
    Stage("quality", "the same runs judged as `harness compare` judges them",
          lambda run: quality_section(run.tier_runs(), run.opts), lambda section: _quality_figures(section)),
    Stage("throughput", "interleaved A/B rounds in the sides' workers, each cell until its answer is clear",
          lambda run: throughput(run), lambda section: _throughput_figures(section)),
))


@dataclass(frozen=True)
class CheckOptions:
    tier: str = "smoke"
    models: tuple[str, ...] = ()  # narrow the tier (empty: the tier's own)
    tasks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    epochs: float | None = None  # shrink the tier's training (None: the tier's)
    max_train_samples: int | None = None
    stages: tuple[str, ...] = field(default_factory=lambda: tuple(STAGES))  # all, in order
    fail_fast: bool = False
    script: Path | None = None
    alpha: float = 0.01
    rounds: int = 10  # timed A/B rounds per side and cell, at most (a cell stops once its answer is clear)
    steps: int = 20  # optimizer steps per round
    warmup: int = 5  # steps dropped at the start of each round
    min_slowdown: float = 0.05  # smallest throughput change flagged
    threads: int = 1
    finetune: Any = None  # harness.finetune.FineTune: your fine-tuning, trained next to the tier's cells
    config_file: Path | None = None  # the same as a TOML file, for the sides' pytest (--harness-config)
    new_refusals: tuple[str, ...] = ()  # why the new side cannot train your fine-tuning (preflight regresses)
    cache: bool = True  # reuse each side's results from earlier checks (--no-cache: make them all again)


@dataclass
class Section:
    stage: str
    title: str
    status: str = OK
    summary: str = ""
    columns: tuple[str, ...] = ()
    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)  # data for the HTML plots (trajectories, step times)
    seconds: float = 0.0  # what the check waited for this section (the sides' work runs in the background)
    sources: dict[str, str] = field(default_factory=dict)  # side -> its work's seconds, or "cache (made ...)"

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    sides: list[dict[str, Any]]  # per side: name, spec, title, versions, patch, known defects
    options: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    cache_notes: list[str] = field(default_factory=list)  # why a side's results were not cached

    @property
    def regressed(self) -> bool:
        return any(s.status in FAILING for s in self.sections)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "upgrade check", "version": 1, "regressed": self.regressed, "sides": self.sides,
                "options": self.options, "started": self.started, "seconds": round(self.seconds, 1),
                "cache_notes": self.cache_notes, "sections": [s.to_dict() for s in self.sections]}


# ---------------------------------------------------------------------------------------------- stages

def preflight(run: StageRun) -> Section:
    from harness.upgrade import api

    opts = run.opts
    old_sig, new_sig = (f.value for f in run.found("signatures"))
    old_walk, new_walk = (f.value for f in run.found("walkthrough"))
    section = Section("preflight", "Preflight: API, deprecations, the course walkthrough",
                      columns=("what", "where", "change"))
    changes = api.diff(old_sig, new_sig)
    section.rows += [{"what": what, "where": where, "change": text} for what, where, text in api.grouped(changes)]
    warned = api.warning_changes(old_walk["warnings"], new_walk["warnings"])
    for key, label in (("gone", "deprecation gone on the new side"), ("new", "new deprecation"),
                       ("both", "deprecation on both sides")):
        for w in warned[key]:
            section.rows.append({"what": label, "where": w["origin"], "change": f"{w['category']}: {w['message']}"})
    problems = []
    if new_walk["error"] and not old_walk["error"]:
        problems.append(f"the course walkthrough no longer runs: {new_walk['error']}")
        section.rows.append({"what": "walkthrough FAILS on the new side", "where": "-", "change": new_walk["error"]})
    for why in opts.new_refusals:
        section.rows.append({"what": "your fine-tuning FAILS on the new side", "where": "-", "change": why})
    if opts.new_refusals:
        problems.append(f"your fine-tuning cannot be trained on the new side ({opts.new_refusals[0]})")
    uses = api.script_uses(opts.script, new_sig) if opts.script else []
    for use in uses:
        section.rows.append({"what": "your script breaks", "where": use.describe(),
                             "change": f"{use.call} no longer accepts {use.keyword}"})
    if uses:
        problems.append(f"{len(uses)} keyword argument(s) in {opts.script} that the new version does not accept")
    breaking = sum(c.breaking for c in changes)
    section.summary = "; ".join(problems) or (
        f"{len(changes)} API change(s) ({breaking} breaking), {len(warned['new'])} new and "
        f"{len(warned['gone'])} resolved deprecation(s); the walkthrough runs on both sides"
        + (f"; {opts.script} passes nothing the new version refuses" if opts.script else ""))
    section.status = REGRESSED if problems else CHANGED if changes or warned["new"] else OK
    if old_walk["error"]:
        section.notes.append(f"the walkthrough fails on the old side too: {old_walk['error']}")
    return section


def contracts(run: StageRun) -> list[Section]:
    old, new = (f.value for f in run.found("suite"))
    yours = run.opts.finetune
    configs, stated = (tuple(yours.configs), yours.training_arguments) if yours is not None else ((), None)
    return [contracts_section(old["outcomes"], new["outcomes"]),
            defects_section(old["defects"], new["defects"], configs, [s.transformers for s in run.sides], stated)]


def defects_section(old: dict[str, set[str]] | None, new: dict[str, set[str]] | None, configs: Sequence[Any],
                    versions: Sequence[str] = ("?", "?"), stated: Mapping[str, Any] | None = None) -> Section:
    """The known defects that reproduced on each side (id -> invariants), diffed: a defect new on the new side is a
    regression when your fine-tuning (`configs`) triggers it or none was given, a warning when it does not; one
    gone from the new side is fixed. A side whose suite reported nothing cannot be judged (error). `stated`: the
    TrainingArguments your fine-tuning was written with (saving checkpoints makes a resume defect yours)."""
    from harness.invariants.defects import by_id

    section = Section("defects", "Known defects reproduced on each side (the training suite's own cases)",
                      columns=("defect", "old", "new", "verdict", "when", "your cells", "summary", "workaround"))
    if old is None or new is None:
        missing = " and ".join(n for n, d in (("old", old), ("new", new)) if d is None)
        section.status, section.summary = ERROR, (f"could not tell which known defects reproduce: the {missing} "
                                                  "side's training suite reported none (see <side>-suites.log)")
        return section
    new_ids, gone_ids = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    affecting = []
    for defect_id in sorted(old.keys() | new.keys()):
        defect = by_id(defect_id)
        hit = defect.affects(configs, stated)
        if defect_id in new_ids:
            verdict = ("REGRESSED: new known defect" + (", affects your fine-tuning" if hit else
                                                        " (no fine-tuning given: assumed to affect you)")
                       if hit or not configs else "warning: new known defect, not triggered by your settings")
            if hit or not configs:
                affecting.append(defect_id)
        elif defect_id in gone_ids:
            verdict = "fixed"
        else:
            verdict = "on both sides" + (" (affects your fine-tuning)" if hit else "")
        section.rows.append({
            "defect": f"[{defect_id}]({defect.link})", "old": _reproduced(old.get(defect_id)),
            "new": _reproduced(new.get(defect_id)), "verdict": verdict, "when": defect.when,
            "your cells": ", ".join(c.cell_id for c in hit) if configs else "(none given)",
            "summary": defect.summary, "workaround": defect.workaround or "-"})
    warned = [i for i in new_ids if i not in affecting]
    parts = [f"{len(new_ids)} new on transformers {versions[1]}" + (f" ({', '.join(new_ids)})" if new_ids else ""),
             f"{len(gone_ids)} fixed" + (f" ({', '.join(gone_ids)})" if gone_ids else ""),
             f"{len(old.keys() & new.keys())} on both sides"]
    if affecting:
        whom = "affects your fine-tuning" if configs else "assumed to affect you (no fine-tuning given)"
        parts.insert(0, ", ".join(f"{i} ({by_id(i).when})" for i in affecting) + f": {whom}")
    if warned:
        parts.append(f"not triggered by your settings: {', '.join(warned)}")
    section.summary = "; ".join(parts)
    section.status = REGRESSED if affecting else CHANGED if section.rows and (new_ids or gone_ids) else OK
    section.notes.append("a defect reproduces when the training suite's case for it breaks the invariant it "
                         "breaks (harness/invariants/defects.py); 'when' is what in a fine-tune's settings triggers it"
                         + ("" if configs else "; no fine-tuning of yours was given (--config, --script, "
                                               "harness.toml or [tool.harness]), so every new defect counts"))
    return section


def _reproduced(invariants: set[str] | None) -> str:
    return "reproduced (" + ", ".join(sorted(invariants)) + ")" if invariants else "-"


def contracts_section(old: Sequence[Any], new: Sequence[Any]) -> Section:
    """Outcome by outcome (replay.SuiteOutcome lists of each side): newly failing tests regress, fixed ones are changes."""
    from harness.upgrade import replay

    section = Section("contracts", "Contracts and training invariants (pytest suites/ -m \"contract or training\")",
                      columns=("test", "old", "new", "message"))
    before = {replay.row(c, by_case=True): c for c in old}
    after = {replay.row(c, by_case=True): c for c in new}
    regressed = fixed = 0
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        old_outcome, new_outcome = (a.outcome if a else "absent"), (b.outcome if b else "absent")
        if old_outcome == new_outcome and new_outcome != "failed":
            continue
        if new_outcome == "failed" and old_outcome != "failed":
            regressed += 1
        if old_outcome == "failed" and new_outcome in ("passed", "xfailed"):
            fixed += 1
        message = (b.message if b and b.message else a.message if a else "")[:240]
        section.rows.append({"test": name, "old": old_outcome, "new": new_outcome, "message": message})
    counts = {o: sum(c.outcome == o for c in new) for o in replay.OUTCOMES}
    section.summary = (f"{regressed} test(s) newly failing, {fixed} fixed; new side: "
                       + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    section.status = REGRESSED if regressed else CHANGED if section.rows else OK
    return section


def unexpressible(sides: Sequence[Side], configs: Sequence[Any], out: Path) -> dict[str, list[str]]:
    """Per side name, why it cannot train your fine-tuning as given (empty: it can). Asked of each side's venv
    before anything trains: on the old side it is a bad input (your settings do not fit the version you run); on
    the new side it is what the upgrade breaks."""
    import dataclasses

    if not configs:
        return {side.name: [] for side in sides}
    spec = json.dumps({"configs": [dataclasses.asdict(c) for c in configs]})

    def ask(side: Side) -> dict[str, str | None]:
        done = run_in(side, ["-m", "harness.upgrade.probe", "expressible", spec], out / f"{side.name}-expressible.log")
        return json_of(done, "checking your settings", side)

    return {side.name: [f"{cell}: {why}" for cell, why in answers.items() if why]
            for side, answers in zip(sides, both(sides, ask))}


def planned_configs(opts: CheckOptions, *, bench: bool = False) -> list[Any]:
    """The cells both sides train: the tier's (narrowed and shrunk as asked), then yours (shrunk alike). With
    `bench`, one per cell group (throughput does not depend on the seed)."""
    from harness.suite import matrix

    shrink = {k: v for k, v in (("epochs", opts.epochs), ("max_train_samples", opts.max_train_samples)) if v}
    selection = matrix.Selection(models=opts.models or None, tasks=opts.tasks or None, seeds=opts.seeds or None,
                                 overrides=shrink, glue_dir=os.environ.get("GLUE_DIR") or None,
                                 yours=tuple(opts.finetune.configs) if opts.finetune is not None else ())
    pick = matrix.bench_cells if bench else matrix.cells
    return [c.config for tier in (opts.tier, matrix.YOURS) for c in pick(tier, selection)]


def check_cells(opts: CheckOptions) -> None:
    """The cells the trajectory and quality stages train, checked here as `harness run` checks its own (values,
    checkpoints, data and its rows): a bad input stops the check before any venv is built."""
    if not {"trajectory", "quality"} & set(opts.stages):
        return
    from harness.core.config import check_inputs
    from harness.data.loading import check_rows
    from harness.data.tasks import get_task

    for config in planned_configs(opts):
        check_inputs(config)
        check_rows(get_task(config.task), source=config.source, glue_dir=config.glue_dir)


def trajectory_section(runs: Sequence[tuple[list, list]]) -> Section:
    from harness.upgrade import trajectory

    (old, old_twins), (new, new_twins) = runs
    parities = trajectory.parity(old, new, replicates=[*old_twins, *new_twins])
    section = Section("trajectory", "Trajectory parity: the first optimizer steps, same seed and data",
                      columns=("cell", "steps", "parity", "detail"))
    for p in parities:
        section.rows.append({"cell": p.cell, "steps": str(p.steps), "parity": p.status, "detail": p.describe()})
    differs = [p for p in parities if p.status == trajectory.DIFFERS]
    tol = parities[0].tolerance if parities else trajectory.FLOAT_FLOOR
    section.summary = (f"{len(differs)} of {len(parities)} cell(s) train differently from the first steps on"
                       if differs else f"all {len(parities)} cell(s) match within floating-point noise")
    section.notes.append(f"tolerance: relative {tol:.1e} (the larger of {trajectory.FLOAT_FLOOR:.0e} and "
                         f"{trajectory.NOISE_FACTOR:g} x the difference of two runs of one cell in one environment); "
                         "a different trajectory is a change to explain, not by itself a regression: the quality "
                         "section says whether it matters")
    section.status = CHANGED if differs or any(p.status == trajectory.MISSING for p in parities) else OK
    if not parities:
        section.status = ERROR
        section.summary = "cannot tell: no cell trained on both sides (see each side's runs log)"
    by_cell_old = {r.cell: r for r in old if r.ok}
    by_cell_new = {r.cell: r for r in new if r.ok}
    section.plots = {cell: {"old": [[s["step"], s["loss"]] for s in by_cell_old[cell].trajectory],
                            "new": [[s["step"], s["loss"]] for s in by_cell_new[cell].trajectory]}
                     for cell in sorted(by_cell_old.keys() & by_cell_new.keys())}
    return section


def quality_section(runs: Sequence[tuple[list, list]], opts: CheckOptions) -> Section:
    from harness.judging import registry
    from harness.core.evidence import Evidence
    from harness.judging.judge import JudgeSettings, RecordJudge
    from harness.judging.verdict import JUDGED
    from harness.reporting import render

    (old, _), (new, _) = runs
    settings = JudgeSettings(alpha=opts.alpha, missing_hint="the old side has no successful run of this cell")
    record_kinds = [j.kind for j in registry.JUDGES.values() if isinstance(j, RecordJudge)]  # throughput: its stage
    verdicts = registry.judge(Evidence(records=list(new)), Evidence(records=list(old)), settings, kinds=record_kinds)
    yours = " and your fine-tuning" if opts.finetune is not None else ""
    section = Section("quality", f"Quality: tier {opts.tier}{yours} on both sides, judged as `harness compare` does",
                      columns=("cell", "kind", "metric", "baseline", "now", "delta", "p", "verdict", "note"))
    section.rows = [{c: r[c] for c in section.columns} for r in (render.row(v) for v in verdicts)]
    failed_new = sorted({r.cell for r in new if not r.ok} - {r.cell for r in old if not r.ok})
    for cell in failed_new:
        error = next(r.error for r in new if r.cell == cell and not r.ok)
        section.rows.append({"cell": cell, "kind": "run", "metric": "-", "baseline": "ok", "now": "failed",
                             "delta": "-", "p": "-", "verdict": "REGRESSED", "note": (error or "")[:200]})
    bad = [v for v in verdicts if v.verdict == "regressed"]
    failed_both = sorted({r.cell for r in new if not r.ok} & {r.cell for r in old if not r.ok})
    section.summary = render.summary(verdicts) + (f"; {len(failed_new)} cell(s) fail only on the new side"
                                                  if failed_new else "")
    if failed_both:
        error = next(r.error for r in new if r.cell == failed_both[0] and not r.ok)
        section.notes.append(f"{len(failed_both)} cell(s) fail on both sides, so they say nothing about the "
                             f"upgrade ({', '.join(failed_both[:3])}; {failed_both[0]}: {(error or '')[:200]})")
    judged = any(v.verdict in JUDGED for v in verdicts)
    if not judged and not failed_new:
        section.summary = (f"cannot tell: no cell could be judged ({len(failed_both)} fail on both sides; see the "
                           "notes and each side's runs log)")
    section.status = REGRESSED if bad or failed_new else OK if judged else ERROR
    section.plots = {"metric": {side: {r.cell: r.primary() for r in records if r.ok}
                                for side, records in (("old", old), ("new", new))}}
    return section


def throughput(run: StageRun) -> Section:
    """Once every side's other work is done (the rounds are timed alone on the machine), interleaved rounds in the
    sides' workers."""
    from harness.upgrade import abtest

    for work in run.works:
        work.wait()
    run.found("bench")  # both sides' cells prepared (or the error that stopped it)
    opts = run.opts
    timers = [lambda cell, w=work: w.worker.ask("round", cell=cell) for work in run.works]
    cells = run.works[0].plan.bench
    samples = abtest.interleaved(timers, len(cells), rounds=opts.rounds, alpha=opts.alpha,
                                 min_effect=opts.min_slowdown, progress=processes.say)
    return throughput_section([c.group for c in cells], samples, opts)


def throughput_section(cells: Sequence[str], samples: Sequence[tuple[Any, Any]], opts: CheckOptions) -> Section:
    """Per cell: Mann-Whitney U on per-step seconds with the minimum effect, confirmed by the paired per-round
    test (abtest.py); a shift the rounds do not agree on is reported, not flagged."""
    import dataclasses

    from harness.judging import stats
    from harness.judging.throughput import ThroughputJudge
    from harness.judging.verdict import UNCHANGED, format_delta, format_interval, format_p
    from harness.upgrade import abtest

    section = Section("throughput", "Throughput: interleaved A/B rounds on this machine",
                      columns=("cell", "old s/step", "new s/step", "delta", "interval", "p (steps)", "p (rounds)",
                               "rounds say", "detectable", "rounds", "verdict"))
    regressed = 0
    for cell, (old, new) in zip(cells, samples):
        verdict = stats.throughput_verdict(kind=ThroughputJudge.kind, cell=cell, metric="train s/step", baseline=old.steps,
                                           candidate=new.steps, alpha=opts.alpha, min_effect=opts.min_slowdown)
        paired = abtest.paired_test(old, new, alpha=opts.alpha, min_effect=opts.min_slowdown)
        agree = paired is not None and paired.p_value < opts.alpha and \
            abs(math.log1p(paired.effect)) >= math.log1p(opts.min_slowdown)
        if verdict.verdict in ("regressed", "improved") and not agree:
            verdict = dataclasses.replace(verdict, verdict=UNCHANGED)  # the rounds do not confirm the shift
        if paired is None and old.stopped.startswith("no change"):
            verdict = dataclasses.replace(verdict, verdict=UNCHANGED)  # settled early: inside half the minimum
        elif paired is None:  # too few rounds for the test that confirms: it cannot tell, whatever the steps say
            verdict = dataclasses.replace(verdict, verdict="cannot tell")
        regressed += verdict.verdict == "regressed"
        detectable = "-" if paired is None else f"{paired.detectable:.1%}"
        section.rows.append({
            "cell": cell, "old s/step": f"{verdict.baseline:.4f}", "new s/step": f"{verdict.now:.4f}",
            "delta": format_delta(verdict), "interval": format_interval(verdict),
            "p (steps)": format_p(verdict.p_value), "p (rounds)": "-" if paired is None else format_p(paired.p_value),
            "rounds say": "-" if paired is None else f"{paired.effect:+.1%}",
            "detectable": detectable, "rounds": f"{len(old.rounds)}" + (" (settled)" if old.stopped else ""),
            "verdict": verdict.verdict.upper() if verdict.verdict == "regressed" else verdict.verdict})
        section.plots[cell] = {"old": old.round_medians, "new": new.round_medians}
    section.summary = (f"{regressed} of {len(cells)} cell(s) slower" if regressed else
                       f"no slowdown of {opts.min_slowdown:.0%} or more in {len(cells)} cell(s)")
    stops = [f"{cell}: {old.stopped}" for cell, (old, _) in zip(cells, samples) if old.stopped]
    if stops:
        section.notes.append("settled before the most rounds: " + "; ".join(stops))
    section.notes.append(f"up to {opts.rounds} timed rounds per side and cell ({opts.steps} steps, first {opts.warmup} "
                         f"dropped), A B B A order after one warm-up round each, {opts.threads} thread(s); a cell "
                         f"stops early once its interval lies inside ±{opts.min_slowdown / 2:.1%} (no change) or the "
                         "change is beyond doubt (both tests reject, the whole interval beyond the minimum). Flagged "
                         f"when the median step time moves by ≥{opts.min_slowdown:.0%}, Mann-Whitney U on per-step "
                         f"seconds rejects at alpha {opts.alpha}, and the per-round ratios (rounds are the independent "
                         "units; 'rounds say' is their median) confirm it: Wilcoxon signed-rank at the same alpha, median beyond "
                         "the same minimum. 'detectable': the smallest slowdown "
                         "this run flags with 80 % power, from the spread of those ratios")
    busy = [b for old, new in samples for b in (*old.busy_cores, *new.busy_cores)]
    if busy:
        section.notes.append(f"other processes used {statistics.median(busy):.2f} cores (median; most "
                             f"{max(busy):.2f}) while the rounds ran: on a busy machine the rounds disagree more "
                             "and the detectable slowdown grows")
    undecided = [row["cell"] for row in section.rows if row["verdict"] == "cannot tell"]
    if undecided and not regressed:
        section.summary = (f"cannot tell: {len(undecided)} of {len(cells)} cell(s) had {opts.rounds} round(s); the "
                           f"paired test needs {abtest.min_rounds(opts.alpha)} at alpha {opts.alpha} (--rounds)")
    section.status = REGRESSED if regressed else ERROR if undecided else OK
    return section


# ---------------------------------------------------------------------------------------------- the check

def side_summary(side: Side) -> dict[str, Any]:
    from harness.invariants.defects import defects_for

    unique = {d.id: d for d in defects_for(side.transformers)} if side.transformers != "?" else {}
    return {"name": side.name, "spec": side.spec.label, "title": side.title, "versions": side.versions,
            "patch": side.spec.patch, "venv": str(side.venv.path),
            "known_defects": [{"id": d.id, "versions": d.versions, "link": d.link, "summary": d.summary}
                              for d in unique.values()]}


def plan(opts: CheckOptions) -> Plan:
    """What each side's work makes for the stages selected."""
    stages = set(opts.stages)
    results = [name for name, needed in (
        ("signatures", "preflight" in stages), ("walkthrough", "preflight" in stages),
        ("runs", bool({"trajectory", "quality"} & stages)), ("replicates", "trajectory" in stages),
        ("bench", "throughput" in stages), ("suite", "contracts" in stages)) if needed]
    return Plan(tuple(results), configs=tuple(planned_configs(opts)) if "runs" in results else (),
                bench=tuple(planned_configs(opts, bench=True)) if "bench" in results else (), threads=opts.threads,
                steps=opts.steps, warmup=opts.warmup, suite_marker=SUITE_MARKER, config_file=opts.config_file)


def side_caches(sides: Sequence[Side], opts: CheckOptions) -> tuple[list[Cache], list[str]]:
    """Each side's cache (a disabled one with --no-cache or where the side cannot be cached), and the notes that
    say why a side is not cached."""
    from harness.machine.env import machine_identity
    from harness.upgrade import cache

    if not opts.cache:
        return [Cache(None) for _ in sides], ["--no-cache: every result was made in this check"]
    source, where = cache.source_digest(), machine_identity()
    caches, notes = [], []
    for side in sides:
        key, why = cache.side_key(side, source, where)
        caches.append(Cache(key))
        if key is None:
            notes.append(f"the {side.name} side is not cached: {why}")
    return caches, notes


def run_check(sides: Sequence[Side], opts: CheckOptions, out: Path,
              progress: Callable[[str], None] = print) -> Report:
    """Every selected stage in order; a stage that cannot run is an ERROR section, the next stages still run
    (unless fail_fast). Each side's work starts at once in the background (sidework.py)."""
    report = Report(sides=[side_summary(s) for s in sides], options={
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in opts.__dict__.items() if k != "finetune"}, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    if opts.finetune is not None:
        report.options["finetune"] = {"source": opts.finetune.source, "describe": opts.finetune.describe(),
                                      "notes": list(opts.finetune.notes),
                                      "cells": [c.cell_id for c in opts.finetune.configs]}
    began = time.perf_counter()
    processes.set_progress(progress)
    caches, report.cache_notes = side_caches(sides, opts) if sides else ([], [])
    for summary, cache in zip(report.sides, caches):
        summary["cache"] = str(cache.root) if cache.root else None
    work_plan = plan(opts)
    works = [SideWork(side, work_plan, out, cache) for side, cache in zip(sides, caches)]
    for work, other in zip(works, reversed(works)):  # the other side cached: this one may train on both cores
        work.spare_core = len(works) == 2 and other.has_cached("runs")
    run = StageRun(sides, opts, out, progress, works)
    try:
        for work in works:
            work.start()
        for stage in (STAGES[name] for name in STAGES if name in opts.stages):
            progress(f"[{stage.name}] ...")
            started = time.perf_counter()
            run.stage = stage.name
            try:
                made = stage.make(run)
            except Exception as err:  # one stage that cannot run must not lose the others' results
                why = str(err) if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"
                made = Section(stage.name, stage.name, status=ERROR, summary=f"could not run: {why}")
            sections = made if isinstance(made, list) else [made]
            for section in sections:
                section.seconds = round((time.perf_counter() - started) / len(sections), 1)
                section.sources = run.sources(stage.name)
                report.sections.append(section)
                progress(f"[{section.stage}] {section.status}: {section.summary} ({section.seconds:.0f} s)")
            if opts.fail_fast and any(s.status in FAILING for s in sections):
                processes.stop_all()  # the sides' work still running is not needed
                break
    except BaseException:
        processes.stop_all()
        raise
    finally:
        for work in works:
            work.close()
    report.seconds = time.perf_counter() - began
    return report


def figures(section: Section) -> list[str]:
    """The HTML plots of a report section, drawn by the stage that made it (none for a section of another name)."""
    stage = STAGES.get(section.stage)
    return stage.figures(section) if stage is not None else []


def _trajectory_figures(section: Section) -> list[str]:
    from harness.reporting import html

    return [html.line_plot({"old": [tuple(p) for p in data["old"]], "new": [tuple(p) for p in data["new"]]},
                           title=f"{cell}: training loss per step", x_label="optimizer step", y_label="loss")
            for cell, data in section.plots.items()]


def _throughput_figures(section: Section) -> list[str]:
    from harness.reporting import html

    return [html.point_plot({side: [(side, statistics.median(values), statistics.pstdev(values))]
                             for side, values in data.items() if values},
                            title=f"{cell}: seconds per step (median of rounds ± sd)", y_label="s/step",
                            categories=("old", "new"))
            for cell, data in section.plots.items()]


def _quality_figures(section: Section) -> list[str]:
    from harness.reporting import html

    metric = section.plots.get("metric")
    if not metric:
        return []
    cells = sorted(set(metric.get("old", {})) | set(metric.get("new", {})))
    return [html.point_plot({side: [(cell, values[cell], 0.0) for cell in cells if values.get(cell) is not None]
                             for side, values in metric.items()},
                            title="primary metric per cell", y_label="metric", categories=cells)]
