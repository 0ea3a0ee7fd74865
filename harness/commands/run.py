"""`harness run`: fine-tune a matrix (the default one or a tier's), every input checked before the first cell trains.

Bad input of any kind — an option value, a config, the output folder, the GLUE folder, a checkpoint, a max_length
beyond the model's positions — is refused with one message before anything trains. Each record is written as soon
as its cell finishes; a cell that fails (data, load, divergence) is recorded as failed and the next cell runs.
Ctrl-C or SIGTERM stops with one line saying how many cells finished and where their records are (exit 130).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.suite import options
from harness.core.record import RunRecord
from harness.errors import HarnessError

DEFAULT_MODELS = ("minilm", "tiny-bert", "tiny-roberta")
DEFAULT_GLUE_TASKS = ("mrpc", "rte", "sst2")
# RunConfig fields settable from the command line; None (not given) keeps the preset's or the tier's value.
OVERRIDES = ("epochs", "learning_rate", "train_batch_size", "eval_batch_size", "max_length", "max_train_samples",
             "max_eval_samples", "source", "device", "precision", "weight_decay", "warmup_ratio", "warmup_steps",
             "gradient_accumulation_steps", "lr_scheduler_type", "optim", "max_grad_norm", "label_smoothing_factor",
             "load_dtype", "sampler_seed", "group_by_length", "eval_accumulation_steps", "save_steps",
             "checkpoint_dir", "resume_from_checkpoint", "trainer_class", "trajectory_steps")
INTERRUPTED = 130  # the shell's code for a run stopped by SIGINT


def add_parser(subparsers: Any) -> None:
    from harness.core.config import DEVICES, PRECISIONS, PRESETS
    from harness.suite.matrix import TIERS

    run = subparsers.add_parser(
        "run", help="fine-tune a matrix of models x tasks x seeds and record the results",
        description="Fine-tune models x tasks x seeds with the real Trainer and write one JSON record per cell. "
                    "Every input is checked before the first cell trains.")
    add = run.add_argument
    add("--tier", type=options.choice("tier", lambda: TIERS), metavar="NAME",
        help=f"run exactly a tier's matrix and settings, as `pytest suites/` does ({', '.join(TIERS)}); the options "
             "below narrow or override it. Default: none (the matrix described by --models/--tasks)")
    options.add_selection(add, default_models=f"{','.join(DEFAULT_MODELS)}, or the tier's",
                          default_tasks=f"the built-in tasks, or {','.join(DEFAULT_GLUE_TASKS)} when "
                                        "GLUE_DIR/--glue-dir is set, or the tier's",
                          default_seeds="0, or the tier's")
    add("--config", metavar="FILE",
        help="your fine-tuning: a TOML file with model, task, seeds and [training_arguments] (TrainingArguments "
             "names), or a pyproject.toml with [tool.harness]; its cells run (after the tier's, with --tier). "
             "Default: harness.toml or pyproject.toml [tool.harness] in the current folder, if present")
    add("--run-configs", metavar="FILE", help=argparse.SUPPRESS)  # JSON list of RunConfig dicts, run as given
    add("--preset", type=options.choice("preset", lambda: PRESETS), metavar="NAME",
        help=f"hyperparameter preset ({', '.join(PRESETS)}). Default: smoke, or the tier's")
    add("--epochs", type=options.positive_float, metavar="N", help=_preset_help("epochs", "-"))
    add("--learning-rate", type=options.positive_float, metavar="LR", help=_preset_help("learning_rate", "-"))
    add("--train-batch-size", type=options.positive_int, metavar="N", help=_preset_help("train_batch_size", "-"))
    add("--eval-batch-size", type=options.positive_int, metavar="N", help=_preset_help("eval_batch_size", "-"))
    add("--max-length", type=options.positive_int, metavar="N",
        help="truncation length in tokens (3 or more; 5 or more for sentence pairs; at most the model's positions). "
             + _preset_help("max_length", "the tokenizer's limit"))
    add("--max-train-samples", type=options.positive_int, metavar="N",
        help="seeded training subset size. " + _preset_help("max_train_samples", "all"))
    add("--max-eval-samples", type=options.positive_int, metavar="N",
        help="seeded evaluation subset size. " + _preset_help("max_eval_samples", "all"))
    add("--source", choices=("hub", "local", "builtin"),
        help="where GLUE rows come from. Default: local when GLUE_DIR/--glue-dir is set, else hub")
    add("--glue-dir", metavar="DIR", help="folder in the original GLUE TSV layout (DIR/MRPC/train.tsv, …). "
                                          "Default: $GLUE_DIR")
    add("--device", choices=DEVICES, help="Default: auto (cuda when available), or the tier's")
    add("--precision", choices=PRECISIONS, help="Default: fp32, or the tier's")
    _add_trainer_settings(run.add_argument_group("Trainer settings (passed to TrainingArguments)"))
    add("--threads", type=options.threads, metavar="N",
        help="torch CPU threads (0: torch's default). Default: the tier's with --tier (as the suites), else 0")
    add("--output", metavar="DIR", default="results",
        help="results root, created if missing; records go to DIR/runs/<machine>/<env>/. Default: results")
    add("--no-save", action="store_true", help="print the table but write no records")
    add("--shard", type=options.shard, metavar="I/N",
        help="run shard I of N of the matrix (e.g. 1/2 here, 2/2 on another machine; combine the --output folders "
             "with `harness merge`). Whole task x model groups, balanced by the committed baselines' training "
             "seconds (results/baselines of this checkout); the same options give the same split everywhere. "
             "Default: the whole matrix")
    run.set_defaults(handler=cmd_run)


def _add_trainer_settings(group: Any) -> None:
    from harness.core.config import LOAD_DTYPES, LR_SCHEDULERS, OPTIMIZERS

    add = group.add_argument
    add("--gradient-accumulation-steps", type=options.positive_int, metavar="N",
        help="micro-batches per optimizer step. " + _default("gradient_accumulation_steps"))
    add("--lr-scheduler-type", choices=LR_SCHEDULERS, metavar="NAME",
        help=f"learning-rate schedule ({', '.join(LR_SCHEDULERS)}). " + _default("lr_scheduler_type"))
    add("--warmup-ratio", type=options.fraction, metavar="R",
        help="warm-up as a fraction of the training steps. " + _preset_help("warmup_ratio", "-"))
    add("--warmup-steps", type=options.count, metavar="N",
        help="warm-up in optimizer steps, instead of the preset's ratio. Default: none (the ratio)")
    add("--weight-decay", type=options.non_negative, metavar="W", help=_preset_help("weight_decay", "-"))
    add("--optim", choices=OPTIMIZERS, metavar="NAME",
        help=f"optimizer ({', '.join(OPTIMIZERS)}). Default: TrainingArguments' own (adamw_torch_fused with torch "
             ">= 2.8 on recent transformers, adamw_torch before; records say which)")
    add("--max-grad-norm", type=options.non_negative, metavar="X",
        help="gradient clipping norm (0: no clipping). " + _default("max_grad_norm"))
    add("--label-smoothing-factor", type=options.fraction, metavar="X", help=_default("label_smoothing_factor"))
    add("--load-dtype", choices=LOAD_DTYPES, metavar="NAME",
        help=f"dtype the checkpoint is loaded in ({', '.join(LOAD_DTYPES)}; auto: the checkpoint's). "
             + _default("load_dtype"))
    add("--sampler-seed", type=options.seed, metavar="INT",
        help="seed of the training sampler's shuffling (TrainingArguments.data_seed). Default: the training seed")
    add("--group-by-length", action="store_true", default=None,
        help="batch examples of similar length together. Default: off")
    add("--eval-accumulation-steps", type=options.positive_int, metavar="N",
        help="move predictions off the device every N eval batches. Default: at the end of evaluation")
    add("--save-steps", type=options.positive_int, metavar="N",
        help="write a Trainer checkpoint every N optimizer steps into --checkpoint-dir. Default: none")
    add("--checkpoint-dir", metavar="DIR", help="folder for --save-steps checkpoints. Default: none")
    add("--resume-from-checkpoint", metavar="DIR",
        help="a checkpoint-N folder the Trainer wrote, to resume training from. Default: none (train from the start)")
    add("--trainer-class", metavar="MODULE:CLASS",
        help="a transformers.Trainer subclass to train with, e.g. harness.core.trainers:ExplicitLossTrainer. "
             "Default: transformers.Trainer")
    add("--trajectory-steps", type=options.count, metavar="N",
        help="record loss, grad norm and learning rate of the first N optimizer steps. "
             + _default("trajectory_steps"))


def _default(field: str) -> str:
    """'Default: <RunConfig's default>', read from RunConfig so the help cannot drift from it."""
    import dataclasses

    from harness.core.config import RunConfig

    value = next(f.default for f in dataclasses.fields(RunConfig) if f.name == field)
    return f"Default: {_shown(value, '-')}"


def _preset_help(field: str, unset: str) -> str:
    """'Default: the preset's (smoke: 512, 4096 for tiny models; seed, run_glue: all)', read from PRESETS so the
    help cannot drift from the values used."""
    from harness.core.config import PRESETS, TINY_MODEL_OVERRIDES

    by_text: dict[str, list[str]] = {}
    for preset, values in PRESETS.items():
        text = _shown(values.get(field), unset)
        tiny = TINY_MODEL_OVERRIDES.get(preset, {}).get(field)
        if tiny is not None:
            text += f", {_shown(tiny, unset)} for tiny models"
        by_text.setdefault(text, []).append(preset)
    return "Default: the preset's (" + "; ".join(f"{', '.join(p)}: {t}" for t, p in by_text.items()) + ")"


def _shown(value: Any, unset: str) -> str:
    return unset if value is None else f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------------- the plan

def plan(args: argparse.Namespace) -> list[Any]:
    """The validated RunConfigs to fine-tune, in order: exactly those of --run-configs; else a tier's cells (--tier)
    or models x tasks x seeds, and your fine-tuning's (--config, harness.toml, [tool.harness])."""
    if getattr(args, "run_configs", None):
        from harness.core.config import read_run_configs

        return read_run_configs(Path(args.run_configs))
    from harness import finetune

    yours = finetune.resolve(getattr(args, "config", None))
    if yours is None:
        return _planned(args)
    print(yours.describe(), *yours.notes, sep="\n  ", flush=True)
    narrowed = args.tier or args.models or args.tasks
    return [*(_planned(args) if narrowed else []), *_with_overrides(yours.configs, args)]


def _with_overrides(configs: Sequence[Any], args: argparse.Namespace) -> list[Any]:
    """Your cells with the command line's explicit settings on top (e.g. --max-train-samples for a quick look)."""
    import dataclasses

    from harness.core.config import validate

    overrides = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    out = [dataclasses.replace(c, **overrides) for c in configs]
    for config in out:
        validate(config)
    return out


def _planned(args: argparse.Namespace) -> list[Any]:
    """A tier's cells (--tier) or models x tasks x seeds."""
    from harness.suite import matrix
    from harness.core.config import check_glue_dir, make_config
    from harness.data.tasks import BUILTIN_TASK_NAMES, get_task

    glue_dir = args.glue_dir or os.environ.get("GLUE_DIR") or None
    if args.glue_dir:  # named explicitly: checked even when no selected task reads it
        check_glue_dir(args.glue_dir)
    overrides = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    if args.warmup_steps is not None and args.warmup_ratio is None:
        overrides["warmup_ratio"] = 0.0  # warm-up in steps replaces the preset's or the tier's ratio
    if args.tier:
        tier = matrix.get_tier(args.tier)
        if tier.needs_glue and not glue_dir and not args.tasks:
            raise HarnessError(f"tier {tier.name} reads GLUE data: pass --glue-dir DIR or set GLUE_DIR (or choose "
                               "tasks with --tasks).")
        selection = matrix.Selection(models=_tuple(args.models), tasks=_tuple(args.tasks), seeds=_tuple(args.seeds),
                                     preset=args.preset, overrides=overrides, glue_dir=glue_dir)
        configs = [cell.config for cell in matrix.cells(tier.name, selection)]
        if not configs:
            raise HarnessError(f"tier {tier.name} has no cells here: none of its tasks ({', '.join(tier.tasks)}) has "
                               f"train.tsv and dev.tsv under {glue_dir}.")
        return configs
    tasks = args.tasks or list(DEFAULT_GLUE_TASKS if glue_dir else BUILTIN_TASK_NAMES)
    return [make_config(model, task, seed=seed, preset=args.preset or "smoke", **overrides,
                        glue_dir=glue_dir if get_task(task).benchmark == "glue" else None)
            for task in tasks for model in args.models or DEFAULT_MODELS for seed in args.seeds or (0,)]


def _tuple(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values else None


def check_output(root: Path) -> Path:
    """The results root, and the harness's cache (HARNESS_CACHE), can be created and written."""
    from harness.core import models

    options.writable_folder(models.cache_root(), "HARNESS_CACHE")
    return options.writable_folder(root, "--output")


# ---------------------------------------------------------------------------------------------------- running

def sharded(configs: list[Any], args: argparse.Namespace) -> list[Any]:
    """The configs of --shard I/N (all of them without it), split on this checkout's committed baselines."""
    if getattr(args, "shard", None) is None:
        return configs
    from harness.suite import sharding
    from harness.suite.matrix import TIERS

    committed = Path(__file__).resolve().parents[2] / "results" / "baselines"
    return sharding.shard_configs(configs, args.shard, committed, [args.tier] if args.tier else sorted(TIERS))


def cmd_run(args: argparse.Namespace) -> int:
    from harness.suite import matrix

    began = time.perf_counter()  # the summary's wall time: imports and checks count too
    planned = plan(args)
    matrix.distinct(planned)
    configs = sharded(planned, args)
    if not configs:
        print(f"harness run: shard {args.shard} has no cells (the matrix has fewer task x model groups than "
              "shards); nothing to run.")
        return 0
    root = None if args.no_save or not _is_main_process() else check_output(Path(args.output))
    from harness.core import runner  # torch and transformers: only once the arguments are known to be good

    for config in configs:
        runner.preflight(config)
    runner.sweep_scratch()  # what runs killed with -9 left behind
    from harness.suite.matrix import get_tier

    _set_threads(args.threads if args.threads is not None else (get_tier(args.tier).threads if args.tier else 0))
    what = f"tier {args.tier}" if args.tier else f"preset {configs[0].preset}"
    what += f", shard {args.shard}" if getattr(args, "shard", None) else ""
    print(f"harness run: {len(configs)} cells ({_shape(configs)}), {what}", flush=True)
    records: list[RunRecord] = []
    folders: list[Path] = []
    started = time.perf_counter()
    try:
        for number, config in enumerate(configs, 1):
            print(f"[{number}/{len(configs)}] {config.cell_id}", flush=True)
            records.append(_run_one(runner, config))
            if root is not None:
                folders.append(_write(records[-1], root))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        runner.sweep_scratch(os.getpid())
        print(f"\nharness: interrupted in cell {len(records) + 1} of {len(configs)}; "
              f"{_where(len(records), folders, root)}", file=sys.stderr, flush=True)
        return INTERRUPTED
    print()
    print(render_table(records))
    where = f"; records in {folders[-1]}" if folders else ""
    cells = f"{len(records)} cell{'s' * (len(records) != 1)}"
    print(f"\n{cells} in {time.perf_counter() - began:.1f} s ({time.perf_counter() - started:.1f} s in the cells, the "
          f"rest loading libraries and checking inputs){where}")
    return 1 if any(not r.ok for r in records) else 0


def _run_one(runner: Any, config: Any) -> RunRecord:
    from harness.data.tasks import get_task

    progress = runner.Progress(get_task(config.task).primary_metric, sys.stderr)
    cell_started = time.perf_counter()
    try:
        record = runner.run_cell(config, callbacks=[progress])
    finally:
        progress.finish()
    if not record.ok:
        print(f"    FAILED: {record.error}", flush=True)
    else:
        value = record.primary()
        shown = "n/a" if value is None else f"{value:.3f}"
        print(f"    {record.primary_metric} {shown} in {time.perf_counter() - cell_started:.1f} s", flush=True)
    return record


def _write(record: RunRecord, root: Path) -> Path:
    from harness.store import results

    try:
        return results.write_record(record, root).parent
    except OSError as err:
        raise HarnessError(f"could not write the record of {record.cell} under --output {root}: {err}; the "
                           "records of earlier cells are there.") from None


def _where(finished: int, folders: Sequence[Path], root: Path | None) -> str:
    cells = f"{finished} cell{'s' if finished != 1 else ''} finished"
    if not finished:
        return f"{cells}, nothing was recorded"
    if root is None:
        return f"{cells}, not recorded (--no-save)"
    return f"{cells}, records in {', '.join(sorted({str(f) for f in folders}))}"


def _shape(configs: Sequence[Any]) -> str:
    tasks, models, seeds = ({getattr(c, k) for c in configs} for k in ("task", "model", "seed"))
    return f"{len(tasks)} tasks x {len(models)} models x {len(seeds)} seeds"


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _is_main_process() -> bool:
    """Under torchrun every rank runs the cell; only rank 0 writes the record."""
    return os.environ.get("RANK", "0") == "0"


def render_table(records: Sequence[RunRecord]) -> str:
    from harness.data.metrics import METRICS
    from harness.store.results import to_frame

    frame = to_frame(records)
    if "run_id" in frame.columns:  # model FLOPs utilisation of training, in % of the device's peak
        frame["mfu_%"] = frame["run_id"].map({r.run_id: float("nan") if r.mfu is None else 100 * r.mfu
                                              for r in records})
    metric_columns = [c for c in METRICS if c in frame.columns]
    columns = ["task", "model", "seed", "split", "status", *metric_columns, "train_samples_s", "train_tokens_s",
               "mfu_%", "eval_samples_s", "train_wall_s"]
    frame = frame[[c for c in columns if c in frame.columns]]
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}",
                           na_rep="-")
