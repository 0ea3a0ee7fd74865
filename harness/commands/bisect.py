"""`harness bisect --good 4.57.6 --bad 4.46.3 -k steps`: the release where a suite test flips, by binary search over
the releases in between (one cached venv each, this checkout in it). Known defects count as failures here
(HARNESS_IGNORE_KNOWN_DEFECTS): the question is where the behaviour changed, not whether it is registered."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.suite import options


def add_parser(subparsers: Any) -> None:
    bis = subparsers.add_parser(
        "bisect", help="find the release between --good and --bad where a suite test starts failing (or, with "
                       "the newer one as --good, where it got fixed)",
        description="Binary search over the package's releases from --good to --bad (pip's index, or --versions): "
                    "each probe builds or reuses a venv with that release and runs `pytest suites/ -m MARKER -k "
                    "EXPR` there, known defects counting as failures. Prints the last good and first bad release.")
    add = bis.add_argument
    add("--good", required=True, metavar="VERSION", help="a release where the test passes")
    add("--bad", required=True, metavar="VERSION", help="a release where it fails")
    add("-k", dest="expression", required=True, type=options.pytest_expression("-k"), metavar="EXPR", help="pytest -k expression selecting the test(s)")
    add("--marker", default="training", type=options.pytest_expression("--marker"), metavar="MARKER", help="suite marker expression. Default: training")
    add("--package", default="transformers", metavar="NAME", help="the package to bisect. Default: transformers")
    add("--versions", type=options.names("version"), metavar="LIST",
        help="the releases to search, comma-separated (default: every release pip's index lists)")
    add("--output", default="results/bisect", metavar="DIR", help="per-version logs. Default: results/bisect")
    bis.set_defaults(handler=cmd_bisect)


def cmd_bisect(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.invariants.defects import IGNORE_ENV
    from harness.upgrade import bisect, replay, venvs

    if args.good == args.bad:
        raise HarnessError(f"--good and --bad are both {args.good}: a bisection needs a release where the test "
                           "passes and another where it fails.")
    bisect.check_versions([args.good, args.bad, *(args.versions or ())])
    output = options.writable_folder(Path(args.output), "--output")
    releases = args.versions or bisect.released_versions(args.package)
    ordered = bisect.between(releases, args.good, args.bad)
    print(f"bisecting {len(ordered)} {args.package} releases from {ordered[0]} (good) to {ordered[-1]} (bad)",
          flush=True)

    def passes(version: str) -> bool:
        venv = venvs.ensure((f"{args.package}=={version}",), log=output / f"{version}.build.log")
        done = replay.run_suite(venv, args.marker, "-k", args.expression, env={IGNORE_ENV: "1"})
        log = output / f"{version}.log"
        log.write_text(done.stdout + done.stderr, encoding="utf-8")
        if done.returncode not in (0, 1):
            why = "no test matched" if done.returncode == 5 else f"pytest exit {done.returncode}"
            raise HarnessError(f"{args.package} {version}: {why} for -m {args.marker!r} -k {args.expression!r} "
                               f"(log: {log}); check the selection with `pytest suites/ --collect-only`.")
        print(f"  {version}: {'passed' if done.returncode == 0 else 'FAILED'}", flush=True)
        return done.returncode == 0

    found = bisect.search(ordered, passes)
    print(found.describe(f"{args.package} -k {args.expression!r}"))
    return 0
