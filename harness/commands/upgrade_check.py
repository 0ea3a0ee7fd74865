"""`harness upgrade-check --from SPEC --to SPEC`: old vs new environment on this machine, one verdict; exit 1 on a
regression (or a stage that could not run), 2 on bad input."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from harness.suite import options
from harness.upgrade.check import STAGES


def add_parser(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "upgrade-check", help="old vs new environment on this machine (API, contracts, training invariants, "
                              "trajectories, quality, interleaved throughput); exit 1 on a regression, 3 when a "
                              "stage could not tell",
        description="Builds (or reuses) one venv per side with uv, this checkout in both, and judges the new side "
                    "against the old: preflight (API signatures, deprecations, your script), contracts and "
                    "training invariants, trajectory parity, quality on a tier, interleaved throughput A/B. "
                    "SPEC: a pip requirement (repeat the option for several), a requirements file, or a venv path. "
                    "Writes DIR/upgrade-check.md, .html and .json.")
    add = up.add_argument
    add("--from", dest="old", action="append", metavar="SPEC", help="the current environment, e.g. "
        "transformers==4.57.6 (torch stays this environment's unless named)")
    add("--to", dest="new", action="append", metavar="SPEC", help="the candidate environment, e.g. "
        "transformers==5.24.0")
    add("--tier", type=options.choice("tier", _tiers), default="smoke", metavar="NAME",
        help="the tier whose cells are trained on both sides (trajectory, quality, throughput). Default: smoke")
    options.add_selection(add, default_models="the tier's", default_tasks="the tier's", default_seeds="the tier's")
    add("--epochs", type=options.positive_float, metavar="X",
        help="train the tier's cells for X epochs instead of the tier's (a quicker, rougher check)")
    add("--max-train-samples", type=options.positive_int, metavar="N",
        help="train the tier's cells on N examples instead of the tier's (a quicker, rougher check)")
    add("--stages", type=options.names("stage", STAGES.__getitem__), default=list(STAGES), metavar="NAMES",
        help="stages to run, comma-separated, in this order: "
             + "; ".join(f"{s.name} ({s.describe})" for s in STAGES.values()) + ". Default: all")
    add("--fail-fast", action="store_true", help="stop after the first stage that regresses")
    add("--config", type=Path, metavar="FILE",
        help="your fine-tuning: a TOML file with model, task, seeds and [training_arguments] (TrainingArguments "
             "names) or a pyproject.toml with [tool.harness]. Its cells train on both sides next to the tier's "
             "(trajectory, quality, throughput), the training invariants draw cases around its settings, and a new "
             "known defect is a regression only when its settings trigger it. Default: harness.toml or "
             "pyproject.toml [tool.harness] in the current folder; else the settings --script passes")
    add("--script", type=Path, metavar="FILE", help="your training script: report the keyword arguments it passes "
        "to TrainingArguments/Trainer/... that the new version no longer accepts; without a config, its literal "
        "TrainingArguments(...) keywords are your fine-tuning's settings")
    options.add_alpha(add)
    add("--rounds", type=options.positive_int, default=10, metavar="N",
        help="timed throughput rounds per side and cell (the paired test needs 8 at alpha 0.01). Default: 10")
    add("--steps", type=options.positive_int, default=20, metavar="N",
        help="optimizer steps per round, the first 5 dropped. Default: 20")
    add("--min-slowdown", type=options.fraction, default=0.05, metavar="FRACTION",
        help="smallest throughput change flagged (interleaved rounds cancel machine drift). Default: 0.05")
    add("--threads", type=options.threads, default=1, metavar="N", help="torch threads per side. Default: 1")
    add("--patch-from", metavar="MODULE:FUNC", help="call FUNC() from MODULE (or path/to/file.py) at the start of "
        "every process of the old side: try a workaround, or inject a fault to test the check")
    add("--patch-to", metavar="MODULE:FUNC", help="the same for the new side")
    add("--no-cache", action="store_true",
        help="make every result again. By default each side's results (suite outcomes, API signatures, walkthrough "
             "warnings, training records) are kept in HARNESS_CACHE/upgrade, keyed by the side's installed "
             "packages, this harness's source, the machine and the stage settings, and reused by the next check "
             "with the same side; the throughput rounds always run both sides")
    add("--output", default="results/upgrade-check", metavar="DIR",
        help="report and per-side logs/records. Default: results/upgrade-check")
    up.set_defaults(handler=cmd_upgrade_check)


def _tiers() -> Any:
    from harness.suite.matrix import TIERS

    return TIERS


def _check_script(script: Path) -> None:
    """--script is a readable Python file (checked before any venv is built: a bad input is not the upgrade's
    fault)."""
    import ast

    from harness.errors import HarnessError

    if script.is_dir():
        raise HarnessError(f"--script {script} is a folder; pass your training script's .py file.")
    if not script.is_file():
        raise HarnessError(f"--script {script} does not exist; pass the path of your training script.")
    try:
        ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (SyntaxError, UnicodeDecodeError) as err:
        syntax = isinstance(err, SyntaxError)
        where = f" line {err.lineno}" if syntax and err.lineno else ""
        raise HarnessError(f"--script {script}{where}: not valid Python ({err.msg if syntax else err}); fix the "
                           "script, or leave --script out.") from None


def _check_direction(prepared: list, old: Any, new: Any) -> None:
    """The old side must not be newer than the new one: an unpinned --from (transformers>=4) resolves to the newest
    release. Said once the venvs are known, before any stage runs."""
    from packaging.version import InvalidVersion, Version

    from harness.errors import HarnessError

    try:
        before, after = (Version(side.transformers) for side in prepared)
    except InvalidVersion:
        return
    if before > after:
        raise HarnessError(f"--from {old.label} resolved to transformers {before}, newer than --to's {after}: this "
                           "would check a downgrade. Pin --from to the version you run now (transformers==X.Y.Z), or swap "
                           "--from and --to.")
    if before == after and old.label != new.label:
        print(f"note: both sides have transformers {before}; the check compares the other packages "
              f"({old.label} -> {new.label})", flush=True)


def cmd_upgrade_check(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.upgrade import abtest, check, report, sides

    if "throughput" in args.stages and args.rounds < abtest.min_rounds(args.alpha):
        raise HarnessError(f"--rounds {args.rounds}: the paired test of the throughput stage cannot reject with "
                           f"fewer than {abtest.min_rounds(args.alpha)} rounds at --alpha {args.alpha}; give "
                           f"--rounds {abtest.min_rounds(args.alpha)} or more, or leave throughput out of --stages.")
    old = sides.parse("from", args.old or [], patch=args.patch_from)
    new = sides.parse("to", args.new or [], patch=args.patch_to)
    if args.script is not None:
        _check_script(args.script)
    if old.label == new.label and old.patch == new.patch:
        if old.venv is None:
            raise HarnessError(f"--from and --to name the same requirements ({old.label}): there is nothing to "
                               "compare. Name the version you upgrade to in --to, or give one side a --patch-from/"
                               "--patch-to.")
        print(f"note: both sides are the venv {old.venv}: an A/A check (the harness against its own noise), not an "
              "upgrade", flush=True)
    from harness import finetune

    yours = finetune.resolve(args.config)
    if yours is None and args.script is not None:
        yours = finetune.from_script(args.script)
    if yours is not None:
        print(yours.describe(), *yours.notes, sep="\n  ", flush=True)
    output = options.writable_folder(Path(args.output), "--output")
    opts = check.CheckOptions(finetune=yours, tier=args.tier, models=tuple(args.models or ()),
                              tasks=tuple(args.tasks or ()), seeds=tuple(args.seeds or ()), epochs=args.epochs,
                              max_train_samples=args.max_train_samples, stages=tuple(args.stages),
                              fail_fast=args.fail_fast, script=args.script, alpha=args.alpha, rounds=args.rounds,
                              steps=args.steps, min_slowdown=args.min_slowdown, threads=args.threads,
                              cache=not args.no_cache)
    check.check_cells(opts)  # data, checkpoints, values: a bad input, before any venv is built
    began = time.perf_counter()
    prepared = []
    for spec in (old, new):
        print(f"[{spec.name}] environment: {spec.label} ...", flush=True)
        prepared.append(sides.prepare(spec, output, log=output / f"{spec.name}-build.log"))
        print(f"[{spec.name}] {prepared[-1].title}", flush=True)
    build_seconds = time.perf_counter() - began
    _check_direction(prepared, old, new)
    config_file = None
    if yours is not None:
        config_file = output / "yours.toml"
        config_file.write_text(finetune.to_toml(yours), encoding="utf-8")
    refused = check.unexpressible(prepared, yours.configs if yours is not None else (), output)
    if refused[old.name]:  # your settings do not fit the version you run now: a bad input, not the upgrade's fault
        raise HarnessError(f"your fine-tuning cannot be trained as given on the {old.name} side "
                           f"({prepared[0].title}), the version you run now:\n  " + "\n  ".join(refused[old.name])
                           + "\nChange or drop that setting in [training_arguments] (TrainingArguments names that "
                           "version accepts).")
    opts = dataclasses.replace(opts, config_file=config_file.resolve() if config_file else None,
                               new_refusals=tuple(refused[new.name]))
    result = check.run_check(prepared, opts, output, progress=lambda line: print(line, flush=True))
    result.seconds += build_seconds
    paths = report.write(result, output)
    print(f"\n{report.markdown(result)}")
    print(f"report: {paths['md']}, {paths['html']}, {paths['json']} ({result.seconds:.0f} s, of which "
          f"{build_seconds:.0f} s building environments)")
    return report.exit_status(result)
