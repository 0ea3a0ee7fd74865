"""What an upgrade check asks of one environment, run inside that side's venv: `python -m harness.upgrade.probe OP`.

- `signatures`: the public API the walkthrough relies on (parameters, kinds, defaults) as JSON;
- `walkthrough`: the course's Trainer code written plainly (harness.overhead.walkthrough) on a tiny model for a
  few steps, with every warning it raises (Python warnings and transformers' logged warnings) as JSON;
- `expressible CONFIGS_JSON`: whether this version can build each RunConfig's TrainingArguments and Trainer class
  (a setting it does not accept, a value it does not know): {cell id: the refusal, or null};
- `serve`: the side's worker (harness.upgrade.worker): the operations above, and training runs and throughput
  rounds, asked for one JSON line at a time on stdin, each answered on stdout (`SERVED`).

Output is one JSON document on stdout (serve: one per answer); everything else goes to stderr.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import IO, Any

TARGETS = ("TrainingArguments.__init__", "Trainer.__init__", "Trainer.train", "Trainer.evaluate", "Trainer.predict",
           "Trainer.compute_loss", "DataCollatorWithPadding.__init__")


def _default(value: Any) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    text = repr(value)
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # function defaults: drop the address


def signatures() -> dict[str, list[dict[str, Any]]]:
    import transformers

    out = {}
    for target in TARGETS:
        owner, _, method = target.partition(".")
        function = getattr(getattr(transformers, owner), method)
        out[target] = [{"name": p.name, "kind": p.kind.name, "default": _default(p.default)}
                       for p in inspect.signature(function).parameters.values() if p.name != "self"]
    return out


class _Logged(logging.Handler):
    """transformers' logger.warning(...) calls, which carry most deprecation notices."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)


def _origin(path: str, line: int) -> str:
    marker = "site-packages/"
    return f"{path.split(marker, 1)[1] if marker in path else path}:{line}"


def walkthrough(steps: int = 6) -> dict[str, Any]:
    """The course walkthrough (harness.overhead.walkthrough, written plainly and importing nothing of the harness:
    tokenize, collator, TrainingArguments, Trainer, train, predict) on a tiny BERT and `steps` batches of the
    built-in paraphrase task; every warning is kept."""
    import transformers

    from harness.core.config import make_config
    from harness.core.runner import scratch_dir
    from harness.overhead import measure
    from harness.overhead import walkthrough as plain

    config = make_config("tiny-bert", "syn-mrpc", epochs=1, train_batch_size=8, max_train_samples=8 * steps,
                         max_eval_samples=32)
    logged = _Logged()
    library_logger = logging.getLogger("transformers")
    library_logger.addHandler(logged)
    transformers.logging.set_verbosity_warning()
    error = None
    with warnings.catch_warnings(record=True) as caught, scratch_dir("walkthrough") as scratch:
        warnings.simplefilter("always")
        try:
            plain.main(str(measure.export(config, threads=1, folder=scratch)))
        except Exception as err:  # a version that no longer runs the walkthrough: that is the finding
            error = f"{type(err).__name__}: {err}"
    library_logger.removeHandler(logged)
    found: dict[tuple[str, str, str], int] = {}
    for w in caught:
        key = (w.category.__name__, str(w.message).strip().splitlines()[0][:300], _origin(w.filename, w.lineno))
        found[key] = found.get(key, 0) + 1
    for r in logged.seen:
        key = ("logger.warning", r.getMessage().strip().splitlines()[0][:300], _origin(r.pathname, r.lineno))
        found[key] = found.get(key, 0) + 1
    return {"error": error, "warnings": [{"category": c, "message": m, "origin": o, "count": n}
                                         for (c, m, o), n in sorted(found.items())]}


class Benches:
    """The throughput cells of one side, each prepared once (data, features, model spec) for all its rounds."""

    def __init__(self, configs: list[dict[str, Any]], *, steps: int, warmup: int) -> None:
        from harness.core.config import RunConfig
        from harness.core.throughput import TrainBench

        self.benches = [TrainBench(RunConfig(**payload), steps=steps, warmup=warmup, reference=False)
                        for payload in configs]

    def round(self, cell: int) -> dict[str, Any]:
        """One timed round of a cell: its per-step seconds (warm-up dropped), and how many cores other processes
        used meanwhile."""
        bench = self.benches[cell]
        before = len(bench.step_seconds)
        (trainer,), _ = bench.setup()
        bench.train_round(trainer)
        return {"step_seconds": bench.step_seconds[before:], "busy_cores": bench.load.cores}


def run_cells(configs: list[dict[str, Any]], output: str, say: Any) -> dict[str, int]:
    """Train each RunConfig (every field as given) as `harness run` does, its record written under `output`."""
    from harness.core import runner
    from harness.core.config import RunConfig, validate
    from harness.store import results

    planned = [RunConfig(**payload) for payload in configs]
    for config in planned:
        validate(config)
        runner.preflight(config)
    failed = 0
    for number, config in enumerate(planned, 1):
        say(f"[{number}/{len(planned)}] {config.cell_id}")
        record = runner.run_cell(config)
        failed += not record.ok
        results.write_record(record, Path(output))
    return {"cells": len(planned), "failed": failed}


def serve(answers: IO[str]) -> None:
    """Answer requests from stdin until an empty line: one JSON object each, {"op": NAME, ...}; `answers` gets
    {"progress": LINE} lines and then {"ok": RESULT} or {"error": MESSAGE}."""
    from harness.errors import HarnessError

    def say(line: str) -> None:
        answers.write(json.dumps({"progress": line}) + "\n")
        answers.flush()

    benches: Benches | None = None
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "threads":
                import torch

                torch.set_num_threads(request["threads"])
                result: Any = torch.get_num_threads()
            elif op == "signatures":
                result = signatures()
            elif op == "walkthrough":
                result = walkthrough()
            elif op == "expressible":
                result = expressible(request["configs"])
            elif op == "run":
                result = run_cells(request["configs"], request["output"], say)
            elif op == "bench":
                benches = Benches(request["configs"], steps=request["steps"], warmup=request["warmup"])
                result = len(benches.benches)
            elif op == "round" and benches is not None:
                result = benches.round(request["cell"])
            else:
                raise HarnessError(f"unknown request {op!r} (or a round before bench)")
        except Exception as err:  # the check reports it; the worker stays up for the next request
            import traceback

            traceback.print_exc()
            answers.write(json.dumps({"error": f"{type(err).__name__}: {err}".splitlines()[0]}) + "\n")
        else:
            answers.write(json.dumps({"ok": result}) + "\n")
        answers.flush()


def expressible(configs: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each cell's refusal on this version (None: it builds), found without loading a model or training."""
    import tempfile

    from harness.core import build, runner
    from harness.core.config import RunConfig
    from harness.errors import HarnessError

    refusals: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for payload in configs:
            config = RunConfig(**payload)
            try:
                build.training_arguments(config, runner.preflight(config), 1000, scratch)
                refusals[config.cell_id] = None
            except (HarnessError, TypeError, ValueError, ImportError) as err:
                refusals[config.cell_id] = f"{type(err).__name__}: {err}".splitlines()[0]
    return refusals


def main(argv: list[str]) -> int:
    op = argv[0] if argv else ""
    if op in ("signatures", "walkthrough"):
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout carries the JSON only
            result = signatures() if op == "signatures" else walkthrough()
        print(json.dumps(result))
    elif op == "expressible":
        with contextlib.redirect_stdout(sys.stderr):
            result = expressible(json.loads(argv[1])["configs"])
        print(json.dumps(result))
    elif op == "serve":
        answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever else writes to stdout, even C code: the log
        with contextlib.redirect_stdout(sys.stderr):
            serve(answers)
    else:
        print("usage: python -m harness.upgrade.probe signatures|walkthrough|expressible SPEC_JSON|serve "
              f"(got {op!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
