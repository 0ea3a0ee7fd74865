"""`harness report`: render a verdicts file as text, markdown or CSV; exit 1 when it holds a regression."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    rep = subparsers.add_parser("report", help="render a verdicts file written by `pytest suites/` or "
                                "`harness compare --output DIR`")
    rep.add_argument("verdicts", nargs="?", default="results/verdicts.json", metavar="FILE",
                     help="verdicts JSON. Default: results/verdicts.json")
    rep.add_argument("--format", choices=("text", "markdown", "csv"), default="text", help="Default: text")
    rep.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.judging.verdict import regressions
    from harness.reporting import render

    verdicts = render.read_verdicts(Path(args.verdicts))
    text = {"text": render.text_table, "markdown": render.markdown, "csv": render.csv_text}[args.format](verdicts)
    print(text, end="" if args.format != "text" else "\n")
    return 1 if regressions(verdicts) else 0
