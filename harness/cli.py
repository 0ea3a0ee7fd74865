"""`harness run | tasks | models | env`: the command-line face of the harness."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULT_MODELS = ("minilm", "tiny-bert", "tiny-roberta")
DEFAULT_GLUE_TASKS = ("mrpc", "rte", "sst2")


def _csv(kind: str, check: Callable[[str], object] | None = None) -> Callable[[str], list[str]]:
    """An argparse type for comma-separated names that validates each one (did-you-mean on a miss)."""
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"expected one or more {kind} names separated by commas")
        for name in names:
            if check is not None:
                try:
                    check(name)
                except HarnessError as err:
                    raise argparse.ArgumentTypeError(str(err)) from None
        return names
    return parse


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, e.g. 0,1,2; got {text!r}")
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    return seeds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from harness import contracts, report
    from harness.models import get_model
    from harness.runner import DEVICES, PRECISIONS, PRESETS
    from harness.tasks import get_task

    parser = argparse.ArgumentParser(prog="harness", description="Fine-tuning benchmark and regression harness "
                                     "for transformers.Trainer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="fine-tune a matrix of models x tasks x seeds and record the results")
    run.add_argument("--models", type=_csv("model", get_model), metavar="NAMES",
                     help=f"comma-separated registry names, local folders or hub ids. Default: "
                          f"{','.join(DEFAULT_MODELS)}")
    run.add_argument("--tasks", type=_csv("task", get_task), metavar="NAMES",
                     help="comma-separated task names (see `harness tasks`). Default: the built-in tasks, or "
                          f"{','.join(DEFAULT_GLUE_TASKS)} when GLUE_DIR/--glue-dir is set")
    run.add_argument("--seeds", type=_seeds, default=[0], metavar="INTS", help="comma-separated seeds. Default: 0")
    run.add_argument("--preset", choices=sorted(PRESETS), default="smoke",
                     help="hyperparameter preset: seed (the course walkthrough), run_glue, smoke. Default: smoke")
    run.add_argument("--epochs", type=_positive_float, metavar="N", help="Default: the preset's")
    run.add_argument("--learning-rate", type=_positive_float, metavar="LR", help="Default: the preset's")
    run.add_argument("--train-batch-size", type=_positive_int, metavar="N", help="Default: the preset's")
    run.add_argument("--eval-batch-size", type=_positive_int, metavar="N", help="Default: the preset's")
    run.add_argument("--max-length", type=_positive_int, metavar="N", help="Default: the preset's")
    run.add_argument("--max-train-samples", type=_positive_int, metavar="N",
                     help="seeded training subset size. Default: the preset's (smoke: 1024; others: all)")
    run.add_argument("--max-eval-samples", type=_positive_int, metavar="N",
                     help="seeded evaluation subset size. Default: the preset's (smoke: 512; others: all)")
    run.add_argument("--source", choices=("hub", "local", "builtin"),
                     help="where GLUE rows come from. Default: local when GLUE_DIR/--glue-dir is set, else hub")
    run.add_argument("--glue-dir", metavar="DIR", help="folder in the original GLUE TSV layout "
                     "(DIR/MRPC/train.tsv, …). Default: $GLUE_DIR")
    run.add_argument("--device", choices=DEVICES, default="auto", help="Default: auto (cuda when available)")
    run.add_argument("--precision", choices=PRECISIONS, default="fp32", help="Default: fp32")
    run.add_argument("--output", metavar="DIR", default="results",
                     help="results root; records go to DIR/runs/<machine>/<env>/. Default: results")
    run.add_argument("--no-save", action="store_true", help="print the table but write no records")
    run.set_defaults(handler=cmd_run)

    for name, handler, text in (("tasks", cmd_tasks, "list the tasks"), ("models", cmd_models, "list the models"),
                                ("env", cmd_env, "print this environment's fingerprint as JSON")):
        sub.add_parser(name, help=text).set_defaults(handler=handler)
    contracts.add_cli(sub)
    report.add_cli(sub)
    return parser


def default_tasks(glue_dir: str | None) -> list[str]:
    from harness.tasks import BUILTIN_TASK_NAMES

    return list(DEFAULT_GLUE_TASKS if glue_dir else BUILTIN_TASK_NAMES)


def cmd_run(args: argparse.Namespace) -> int:
    from harness import results, runner

    glue_dir = args.glue_dir or os.environ.get("GLUE_DIR") or None
    models = args.models or list(DEFAULT_MODELS)
    tasks = args.tasks or default_tasks(glue_dir)
    overrides = {k: getattr(args, k) for k in ("epochs", "learning_rate", "train_batch_size", "eval_batch_size",
                                                "max_length", "max_train_samples", "max_eval_samples")}
    configs = [runner.make_config(model, task, seed=seed, preset=args.preset, source=args.source, glue_dir=glue_dir,
                                  device=args.device, precision=args.precision, **overrides)
               for task in tasks for model in models for seed in args.seeds]
    print(f"harness run: {len(configs)} cells ({len(tasks)} tasks x {len(models)} models x {len(args.seeds)} seeds), "
          f"preset {args.preset}", flush=True)
    records, started = [], time.perf_counter()
    for number, config in enumerate(configs, 1):
        print(f"[{number}/{len(configs)}] {config.cell_id}", flush=True)
        cell_started = time.perf_counter()
        try:
            record = runner.run(config).to_dict()
        except HarnessError as err:
            record = failed_record(config, err)
            print(f"    FAILED: {err}", flush=True)
        else:
            primary = record["task"]["primary_metric"]
            value = next(iter(record["metrics"].values())).get(primary)
            shown = "n/a" if value is None else f"{value:.3f}"
            print(f"    {primary} {shown} in {time.perf_counter() - cell_started:.1f} s", flush=True)
        records.append(record)
        if not args.no_save and _is_main_process():
            results.write_record(record, Path(args.output))
    print()
    print(render_table(records))
    where = f"; records in {Path(args.output) / 'runs'}" if not args.no_save else ""
    print(f"\n{len(records)} cells in {time.perf_counter() - started:.1f} s{where}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


def _is_main_process() -> bool:
    """Under torchrun every rank runs the cell; only rank 0 writes the record."""
    return os.environ.get("RANK", "0") == "0"


def failed_record(config: Any, error: Exception) -> dict[str, Any]:
    """A record for a cell that could not run: the config and environment, so the failure is on file too."""
    from harness import env
    from harness.record import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "run_id": uuid.uuid4().hex, "cell": config.cell_id,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "failed",
            "error": str(error), "config": dataclasses.asdict(config), "task": {"name": config.task, "metrics": []},
            "env": env.fingerprint("cpu"), "data": {}, "model": {}, "epochs": [], "train_loss": [], "metrics": {},
            "predict_contract": {}, "predictions": {}, "timings": {}}


def render_table(records: Sequence[dict[str, Any]]) -> str:
    from harness.results import to_frame

    frame = to_frame(records)
    metric_columns = [c for c in ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
                      if c in frame.columns]
    columns = ["task", "model", "seed", "split", "status", *metric_columns, "train_samples_s", "train_tokens_s",
               "eval_samples_s", "train_wall_s"]
    frame = frame[[c for c in columns if c in frame.columns]]
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}",
                           na_rep="-")


def cmd_tasks(args: argparse.Namespace) -> int:
    from harness.tasks import TASKS

    for task in TASKS.values():
        kind = "regression" if task.is_regression else f"{task.num_labels} labels"
        print(f"{task.name:16} {task.benchmark:8} {kind:11} {task.primary_metric:21} {task.description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from harness.models import MODELS

    for spec in MODELS.values():
        offline = "offline" if spec.kind != "hub" else "hub"
        print(f"{spec.name:24} {spec.kind:9} {offline:8} {spec.source:40} {spec.description}")
    print("\nAlso accepted: any local checkpoint folder, or any hub id 'org/name'.")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from harness.env import fingerprint
    from harness.runner import resolve_device

    print(json.dumps(fingerprint(resolve_device("auto")), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
