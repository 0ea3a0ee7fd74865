"""`harness overhead`: the harness against the plain course walkthrough on the same cell, interleaved rounds."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from harness.suite import options


def add_parser(subparsers: Any) -> None:
    cmd = subparsers.add_parser(
        "overhead", help="what the harness costs over the plain course walkthrough (same cell, interleaved)",
        description="Run one cell as `harness run` and as a plain script doing the course walkthrough by hand "
                    "(tokenize, collator, Trainer.train, predict) on the same rows and settings, a fresh process "
                    "per side and round in the order A B B A: ratio of train samples/s and of wall time from "
                    "start to verdict, and the harness's fixed costs (imports, model load, tokenization cold and "
                    "cached). Run it on a quiet machine.")
    add = cmd.add_argument
    add("--model", default="minilm", help="registry name, folder or hub id. Default: minilm")
    add("--task", default=None, help="Default: mrpc when GLUE_DIR/--glue-dir is set, else syn-mrpc")
    add("--glue-dir", metavar="DIR", default=os.environ.get("GLUE_DIR") or None, help="Default: $GLUE_DIR")
    add("--preset", default="run_glue", help="hyperparameter preset. Default: run_glue")
    add("--epochs", type=float, default=1.0, help="Default: 1")
    add("--max-train-samples", type=int, default=None, help="Default: all rows (syn-mrpc: 1024)")
    add("--max-eval-samples", type=int, default=None, help="Default: all rows")
    add("--train-batch-size", type=int, default=None, help="Default: the preset's")
    add("--rounds", type=options.positive_int, default=3, help="pairs of runs. Default: 3")
    add("--threads", type=int, default=0, help="torch CPU threads on both sides (0: torch's default). Default: 0")
    add("--output", metavar="DIR", help="also write the measurements as JSON to DIR/overhead.json")
    cmd.set_defaults(handler=cmd_overhead)


def cmd_overhead(args: argparse.Namespace) -> int:
    from harness.overhead import measure as overhead
    from harness.core.config import make_config

    task = args.task or ("mrpc" if args.glue_dir else "syn-mrpc")
    samples = args.max_train_samples or (1024 if task.startswith("syn-") else None)
    config = make_config(args.model, task, preset=args.preset, epochs=args.epochs, max_train_samples=samples,
                         max_eval_samples=args.max_eval_samples, train_batch_size=args.train_batch_size,
                         glue_dir=args.glue_dir if not task.startswith("syn-") else None)
    written = None
    if args.output:
        from harness.suite import options

        written = options.writable_folder(Path(args.output), "--output") / "overhead.json"
    print(f"harness overhead: {config.cell_id}, {args.rounds} round(s) per side, threads {args.threads or 'default'}")
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as scratch:
        harness_side, plain_side, phases = overhead.measure(config, rounds=args.rounds, threads=args.threads,
                                                            folder=Path(scratch))
        costs = overhead.fixed_costs(config)
    summary = overhead.summarize(harness_side, plain_side)
    spread = lambda values: f"{min(values):.3f}-{max(values):.3f}"  # noqa: E731
    print(f"train samples/s  harness {statistics.median(harness_side.samples_per_second):.2f}, plain "
          f"{statistics.median(plain_side.samples_per_second):.2f} (medians): ratio {summary.speed_ratio:.3f} "
          f"(per round {spread(summary.speed_ratios)})")
    print(f"wall to verdict  harness {statistics.median(harness_side.wall_s):.1f} s, plain "
          f"{statistics.median(plain_side.wall_s):.1f} s (medians): plain/harness {summary.wall_ratio:.3f} "
          f"(per round {spread(summary.wall_ratios)})")
    print(f"metric           {'equal on both sides in every round' if summary.same_metric else 'DIFFERS'}: "
          f"harness {harness_side.values}, plain {plain_side.values}")
    print("harness fixed costs (s): " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    median_phases = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    print("plain phases, seconds since start (median): " + ", ".join(f"{k} {v:.2f}" for k, v in median_phases.items()))
    if written is not None:
        written.write_text(json.dumps({
            "cell": config.cell_id, "rounds": args.rounds, "threads": args.threads,
            "harness": vars(harness_side), "plain": vars(plain_side), "plain_phases": phases,
            "fixed_costs": costs, "summary": vars(summary)}, indent=1))
    return 0 if summary.same_metric else 1
