"""`harness replay --versions 4.46.3,4.57.6,5.24.0`: a suite over released transformers versions, one table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness import options

DEFAULT_VERSIONS = "4.46.3,4.50.3,4.57.6,5.0.0,5.24.0"


def add_parser(subparsers: Any) -> None:
    rep = subparsers.add_parser(
        "replay", help="run a suite (default: the training invariants) against several released transformers "
                       "versions, one cached venv each, and tabulate version x test",
        description="Builds (or reuses) one venv per version with uv, this checkout installed editable and this "
                    "environment's torch, runs `pytest suites/ -m MARKER` in each and writes DIR/replay.md and "
                    "DIR/replay.json. Exit 1 when a test failed on some version (known defects are xfails).")
    rep.add_argument("--versions", type=options.names("transformers version"), default=DEFAULT_VERSIONS.split(","),
                     metavar="VERSIONS", help=f"comma-separated transformers versions or requirement specs. "
                                              f"Default: {DEFAULT_VERSIONS}")
    rep.add_argument("--marker", default="training", metavar="MARKER",
                     help="which suite: a marker expression, e.g. training, contract, 'training or contract'. "
                          "Default: training")
    rep.add_argument("--output", default="results/replay", metavar="DIR",
                     help="where replay.md, replay.json and each version's JUnit XML go. Default: results/replay")
    rep.set_defaults(handler=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from harness.upgrade import replay, venvs

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[replay.Case]] = {}
    for version in args.versions:
        print(f"[{version}] environment ...", flush=True)
        venv = venvs.ensure(venvs.transformers_spec(version), log=output / f"{version}.build.log")
        junit = output / f"{version}.xml"
        print(f"[{version}] pytest suites/ -m {args.marker!r} ...", flush=True)
        done = replay.run_suite(venv, args.marker, junit)
        (output / f"{version}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        if not junit.is_file():
            results[version] = [replay.Case("(session)", "", "failed", (done.stderr or done.stdout)[-300:])]
            continue
        results[version] = replay.read_junit(junit)
        print(f"[{version}] " + ", ".join(f"{t}: {s}" for t, s in replay.summarize(results[version]).items()),
              flush=True)
    text = replay.markdown(results, title=f"pytest suites/ -m {args.marker!r} across transformers versions",
                           by_case=True)
    (output / "replay.md").write_text(text, encoding="utf-8")
    (output / "replay.json").write_text(json.dumps(
        {v: [c.__dict__ for c in cases] for v, cases in results.items()}, indent=1), encoding="utf-8")
    print("\n" + text)
    return 1 if any(c.outcome == "failed" for cases in results.values() for c in cases) else 0
