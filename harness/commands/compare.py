"""`harness compare BASELINE CANDIDATE`: judge one record set against another with every judge; exit 1 on a
regression, 3 when nothing could be judged (no verdict but "not comparable"). Either side is a folder or file of run records, suite measurements or committed baselines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.suite import options

NOTHING_JUDGED = 3  # the exit status when every verdict is "not comparable": no assurance given
MISSING_HINT = "the baseline set has no run of this cell: add one (e.g. `harness run --tier smoke --output DIR`)"


def add_parser(subparsers: Any) -> None:
    cmp = subparsers.add_parser(
        "compare", help="judge a candidate record set against a baseline set (quality, eval set, time-to-quality, "
                        "throughput); exit 1 on a regression, 3 when nothing could be judged",
        description="Judge CANDIDATE against BASELINE. Each is a folder or JSON file holding run records "
                    "(`harness run`), suite measurements or committed baselines, e.g. "
                    "`harness compare results/baselines out/` or `harness compare runs-4.57/ runs-5.24/`. "
                    "Records of several environments in CANDIDATE are judged side by side.")
    cmp.add_argument("baseline", metavar="BASELINE", help="the reference record set (folder or file)")
    cmp.add_argument("candidate", metavar="CANDIDATE", help="the record set to judge (folder or file)")
    cmp.add_argument("--kinds", type=options.names("verdict kind", _known_kind), metavar="KINDS",
                     help="verdict kinds to judge, comma-separated (quality, eval set, convergence, throughput). "
                          "Default: all")
    options.add_judging(cmp.add_argument)
    cmp.add_argument("--output", metavar="DIR",
                     help="also write DIR/verdicts.md, DIR/verdicts.json and DIR/verdicts.csv. Default: none")
    cmp.add_argument("--markdown", metavar="FILE", help="also write the table as markdown here. Default: none")
    cmp.set_defaults(handler=cmd_compare)


def _known_kind(name: str) -> None:
    from harness.judging.registry import JUDGES  # imported when used: it loads scipy

    JUDGES[name]  # a miss raises UnknownNameError with a did-you-mean


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.judging import registry
    from harness.judging.judge import JudgeSettings
    from harness.reporting import render
    from harness.store import recordsets

    if args.output:
        options.writable_folder(Path(args.output), "--output")
    if args.markdown:
        options.writable_file(Path(args.markdown), "--markdown")
    baseline, candidate = recordsets.load([args.baseline]), recordsets.load([args.candidate])
    if Path(args.baseline).resolve() == Path(args.candidate).resolve():
        print(f"note: BASELINE and CANDIDATE are both {args.baseline}: an A/A comparison, which can only show the "
              "judges' own noise", file=sys.stderr)
    for name, side, evidence in (("BASELINE", args.baseline, baseline), ("CANDIDATE", args.candidate, candidate)):
        if not evidence:
            raise HarnessError(f"{name} {side} holds no run record, measurement or baseline; pass a folder "
                               "written by `harness run --output DIR`, `pytest suites/` or results/baselines.")
    settings = JudgeSettings(alpha=args.alpha, ttq_fraction=args.ttq_fraction, min_slowdown=args.min_slowdown,
                             min_slowdown_run=args.min_slowdown_run, missing_hint=MISSING_HINT)
    verdicts = registry.judge(candidate, baseline, settings, kinds=args.kinds)
    print(render.text_table(verdicts))
    print(f"\n{render.summary(verdicts)}")
    try:
        if args.output:
            target = Path(args.output) / "verdicts.md"
            render.write_tables(verdicts, target, baseline=args.baseline, candidate=args.candidate)
            (target.with_suffix(".csv")).write_text(render.csv_text(verdicts), encoding="utf-8")
            print(f"tables: {target}, {target.with_suffix('.json')}, {target.with_suffix('.csv')}")
        if args.markdown:
            Path(args.markdown).write_text(render.markdown(verdicts), encoding="utf-8")
    except OSError as err:
        raise HarnessError(f"the verdicts (printed above) could not be written: {err.strerror or err} "
                           f"({err.filename or args.output or args.markdown}). Free space or pass another "
                           "--output/--markdown.") from None
    if any(v.verdict == "regressed" for v in verdicts):
        print("\n" + render.failure_text(verdicts, against=args.baseline,
                                         accept="make the candidate the new reference"), file=sys.stderr)
        return 1
    from harness.judging.verdict import JUDGED, NOT_COMPARABLE

    unlike = [v for v in verdicts if v.verdict == NOT_COMPARABLE and "settings differ" in (v.detail or "")]
    if unlike:
        print(f"\nnote: {len(unlike)} of {len(verdicts)} verdict(s) are not comparable because the candidate ran "
              f"with other settings than its baseline (e.g. {unlike[0].cell}: {unlike[0].detail[:160]}). The "
              "committed baselines are those of `harness run --tier smoke` and `--tier glue` (same cells, settings "
              "and threads): run that to judge like with like.", file=sys.stderr)
    if not any(v.verdict in JUDGED for v in verdicts):
        print(f"\nnothing was judged: no cell of {args.candidate} has a comparable one in {args.baseline} (see "
              "each row's reason). Compare runs of the same cells and settings, e.g. `harness run --tier smoke` "
              "against results/baselines.", file=sys.stderr)
        return NOTHING_JUDGED
    return 0
