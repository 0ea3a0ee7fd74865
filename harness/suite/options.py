"""Option value parsers shared by the CLI and the pytest plugin: each validates, and names what is allowed.

Every parser is an argparse `type=`: it returns the parsed value or raises `argparse.ArgumentTypeError` with one
message saying what was wrong and what is accepted. Registry lookups are imported lazily (no torch import here).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any

from harness.core.config import MAX_SEED
from harness.base.writable import writable_file, writable_folder  # noqa: F401  (the CLI's checks)
from harness.errors import HarnessError


def names(kind: str, lookup: Callable[[str], Any] | None = None) -> Callable[[str], list[str]]:
    """Comma-separated names, each checked by `lookup` (which raises HarnessError with did-you-mean on a miss)."""
    def parse(text: str) -> list[str]:
        found = [n.strip() for n in text.split(",") if n.strip()]
        if not found:
            raise argparse.ArgumentTypeError(f"expected one or more {kind} names separated by commas, got {text!r}")
        _once(kind, found, text)
        for name in found:
            if lookup is not None:
                try:
                    lookup(name)
                except HarnessError as err:
                    raise argparse.ArgumentTypeError(str(err)) from None
        return found
    return parse


def seeds(text: str) -> list[int]:
    """Comma-separated seeds in 0 .. 2**32 - 1."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or any(not 0 <= s <= MAX_SEED for s in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integer seeds up to {MAX_SEED} separated by commas "
                                         f"(e.g. 0,1,2), got {text!r}")
    _once("seed", values, text)
    return values


def _once(kind: str, values: list[Any], text: str) -> None:
    """A name or seed given twice would train the same cell twice and count it twice."""
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{kind} {', '.join(twice)} given more than once in {text!r}; name each "
                                         "once (every cell runs once per seed)")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def probability(text: str) -> float:
    value = _number(text)
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative finite number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number from 0 up to (not including) 1: warm-up ratio, label smoothing."""
    value = _number(text)
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 up to (not including) 1, got {text!r}")
    return value


def count(text: str) -> int:
    """A non-negative integer (0 allowed: no warm-up steps, no trajectory)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def seed(text: str) -> int:
    """One seed in 0 .. 2**32 - 1."""
    if not text.strip().isdigit() or int(text) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed up to {MAX_SEED}, got {text!r}")
    return int(text)


def threads(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a thread count (0 = torch's default), got {text!r}")
    return int(text)


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def override(text: str) -> tuple[str, Any]:
    """KEY=VALUE setting one RunConfig field (not model, task, seed or preset), typed by that field."""
    from harness.core.config import RunConfig

    fields = {f.name: f for f in dataclasses.fields(RunConfig) if f.name not in ("model", "task", "seed", "preset")}
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in fields:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}; "
                                         f"got {text!r}")
    kind = str(fields[key].type)
    raw = raw.strip()
    try:
        if raw.lower() == "none":
            value: Any = None
        elif kind == "bool":
            value = _BOOLEANS[raw.lower()]
        elif "int" in kind:
            value = int(raw)
        elif "float" in kind:
            value = float(raw)
        else:
            value = raw
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{key} needs a {kind.replace(' | None', '')} value, got {raw!r}") from None
    return key, value


def shard(text: str) -> Any:
    """I/N: this machine's shard of the matrix (harness.suite.sharding.Shard)."""
    from harness.suite.sharding import parse_shard

    try:
        return parse_shard(text)
    except HarnessError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def choice(kind: str, allowed: Callable[[], Any]) -> Callable[[str], str]:
    """One name out of `allowed()` (a lazily imported registry), with did-you-mean on a miss."""
    def parse(text: str) -> str:
        from harness.errors import UnknownNameError

        known = allowed()
        if text not in known:
            raise argparse.ArgumentTypeError(str(UnknownNameError(kind, text, known)))
        return text
    return parse


def pytest_expression(option: str) -> Callable[[str], str]:
    """A pytest -k / -m expression, parsed with pytest's own parser so a typo is refused before any work (pytest
    would only exit 4 after a venv build). An empty one is refused: it selects every test."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option} is empty, which selects every test; name the test(s), "
                                             "e.g. -k resume")
        try:
            from _pytest.mark.expression import Expression  # pytest's parser; private, so only used when present
        except ImportError:
            return text
        try:
            Expression.compile(text)
        except SyntaxError as err:
            raise argparse.ArgumentTypeError(f"{option} {text!r} is not a pytest expression: {err.msg}; write "
                                             "names joined by and/or/not, e.g. 'resume and not bf16'") from None
        return text
    return parse


# ------------------------------------------------------------------------------------------------ shared options
# Declared once for the pytest plugin (prefix "harness-") and every command (no prefix); `add` is argparse's
# add_argument or pytest's addoption. Each caller says what its default is, in its own words.

def _model(name: str) -> Any:
    from harness.core.models import get_model

    return get_model(name)


def _task(name: str) -> Any:
    from harness.data.tasks import get_task

    return get_task(name)


def add_selection(add: Callable[..., Any], prefix: str = "", *, default_models: str, default_tasks: str,
                  default_seeds: str) -> None:
    """--models, --tasks, --seeds, each default said in the caller's words."""
    add(f"--{prefix}models", type=names("model", _model), metavar="NAMES",
        help=f"models, comma-separated (registry names, local folders or hub ids). Default: {default_models}")
    add(f"--{prefix}tasks", type=names("task", _task), metavar="NAMES",
        help=f"tasks, comma-separated (names, see `harness tasks`, or task files). Default: {default_tasks}")
    add(f"--{prefix}seeds", type=seeds, metavar="INTS",
        help=f"training seeds, comma-separated, e.g. 0,1,2. Default: {default_seeds}")


def add_alpha(add: Callable[..., Any], prefix: str = "") -> None:
    from harness.judging.judge import JudgeSettings

    alpha = JudgeSettings().alpha
    add(f"--{prefix}alpha", type=probability, default=alpha, metavar="P",
        help=f"significance level of every verdict. Default: {alpha}")


def add_judging(add: Callable[..., Any], prefix: str = "") -> None:
    """--alpha, --ttq-fraction, --min-slowdown and --min-slowdown-run, defaulting to harness.judging's
    JudgeSettings."""
    from harness.judging.judge import JudgeSettings

    default = JudgeSettings()
    add_alpha(add, prefix)
    add(f"--{prefix}ttq-fraction", type=probability, default=default.ttq_fraction, metavar="F",
        help=f"time-to-quality target: this fraction of the baseline's final metric. Default: {default.ttq_fraction}")
    add(f"--{prefix}min-slowdown", type=fraction, default=default.min_slowdown, metavar="FRACTION",
        help="smallest throughput change flagged in benchmark measurements, as a fraction of the baseline's median "
             f"step time. Default: {default.min_slowdown}")
    add(f"--{prefix}min-slowdown-run", type=fraction, default=default.min_slowdown_run, metavar="FRACTION",
        help="the same for step times taken inside fine-tuning runs, which vary more between runs (about ±10%% "
             f"here). Default: {default.min_slowdown_run}")
