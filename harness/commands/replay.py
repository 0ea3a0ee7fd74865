"""`harness replay --versions 4.46.3,4.57.6,5.24.0`: a suite over released transformers versions, one table."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import re
import time
from pathlib import Path
from typing import Any

from harness.suite import options

DEFAULT_VERSIONS = "4.46.3,4.50.3,4.57.6,5.0.0,5.24.0"


def add_parser(subparsers: Any) -> None:
    rep = subparsers.add_parser(
        "replay", help="run a suite (default: the training invariants) against several released transformers "
                       "versions, one cached venv each, and tabulate version x test",
        description="Builds (or reuses) one venv per version with uv, this checkout installed editable and this "
                    "environment's torch, runs `pytest suites/ -m MARKER` in each and writes the table as "
                    "DIR/MARKER.md and DIR/MARKER.json (e.g. training.md; each version's JUnit XML and log beside "
                    "them). Exit 1 when a test failed on some version (known defects are xfails).")
    rep.add_argument("--versions", type=options.names("transformers version"), default=DEFAULT_VERSIONS.split(","),
                     metavar="VERSIONS", help=f"comma-separated transformers versions or requirement specs. "
                                              f"Default: {DEFAULT_VERSIONS}")
    rep.add_argument("--marker", default="training", metavar="MARKER", type=options.pytest_expression("--marker"),
                     help="which suite: a marker expression, e.g. training, contract, 'training or contract'. "
                          "Default: training")
    rep.add_argument("--output", default="results/replay", metavar="DIR",
                     help="where MARKER.md, MARKER.json and each version's JUnit XML go. Default: results/replay")
    rep.set_defaults(handler=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from harness.upgrade import replay, venvs

    from harness.errors import HarnessError

    output = options.writable_folder(Path(args.output), "--output")
    name = table_name(args.marker)
    results: dict[str, list[replay.SuiteOutcome]] = {}
    walls: dict[str, float] = {}
    for version in args.versions:
        started = time.perf_counter()
        print(f"[{version}] environment ...", flush=True)
        venv = venvs.ensure(venvs.transformers_spec(version), log=output / f"{name}-{version}.build.log")
        junit = output / f"{name}-{version}.xml"
        print(f"[{version}] pytest suites/ -m {args.marker!r} ...", flush=True)
        done = replay.run_suite(venv, args.marker, f"--junitxml={junit}", env=replay.OFFLINE)
        (output / f"{name}-{version}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        walls[version] = time.perf_counter() - started
        if not junit.is_file():
            results[version] = [replay.SuiteOutcome("(session)", "", "failed", (done.stderr or done.stdout)[-300:])]
            continue
        results[version] = replay.read_junit(junit)
        if not results[version]:
            raise HarnessError(f"pytest suites/ -m {args.marker!r} selected no test on transformers {version} (see "
                               f"{output / f'{name}-{version}.log'}); the suites' markers: training, contract, "
                               "smoke, glue, gpu, yours.")
        print(f"[{version}] " + ", ".join(f"{t}: {s}" for t, s in replay.summarize(results[version]).items())
              + f" ({walls[version]:.0f} s)", flush=True)
    torch = importlib.metadata.version("torch").split("+")[0]  # every venv gets this environment's torch
    title = (f"pytest suites/ -m {args.marker!r} across transformers releases (harness replay, torch {torch}, "
             f"{datetime.date.today().isoformat()})")
    text = replay.markdown(results, title=title, by_case=True, walls=walls)
    (output / f"{name}.md").write_text(text, encoding="utf-8")
    (output / f"{name}.json").write_text(json.dumps(
        {v: [c.__dict__ for c in cases] for v, cases in results.items()} | {"wall_seconds": walls}, indent=1),
        encoding="utf-8")
    print("\n" + text)
    return 1 if any(c.outcome == "failed" for cases in results.values() for c in cases) else 0


def table_name(marker: str) -> str:
    """The file stem of a marker expression's table: "training" -> training, "training or contract" ->
    training-or-contract."""
    return re.sub(r"[^A-Za-z0-9]+", "-", marker).strip("-") or "replay"
