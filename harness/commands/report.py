"""`harness report`: render a verdicts file, or any set of run records as one table across environments (text,
markdown, CSV or a self-contained HTML page with plots); exit 1 when what it shows holds a regression."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT = "results/verdicts.json"
FORMATS = ("text", "markdown", "csv", "html")


def add_parser(subparsers: Any) -> None:
    rep = subparsers.add_parser(
        "report", help="render a verdicts file, or run records of any environments as one results table",
        description="With one verdicts file (written by `pytest suites/` or `harness compare --output DIR`): render "
                    "it. With run record files or folders (`harness run --output DIR`, results/baselines, tox's "
                    "results/<env>/): one table, rows = cells, columns = environments (transformers / torch / "
                    "datasets versions), values = primary metric mean ± std over seeds and train samples/s, each "
                    "environment judged against the reference. Exit 1 when a regression is shown.")
    rep.add_argument("paths", nargs="*", default=[DEFAULT], metavar="PATH",
                     help=f"a verdicts JSON file, or run record files and folders. Default: {DEFAULT}")
    rep.add_argument("--format", choices=FORMATS, default="text", help="Default: text")
    rep.add_argument("--output", metavar="DIR", help="write DIR/report.<txt|md|csv|html> (by --format) instead of "
                     "printing. Default: print")
    rep.add_argument("--reference", metavar="ENV",
                     help="records only: the environment the others are judged against, as a transformers version "
                          "(4.57.6) or an env key. Default: the oldest transformers version")
    rep.set_defaults(handler=cmd_report)


def is_verdicts_file(path: Path) -> bool:
    from harness.store.recordsets import kind_of

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # the records loader reports what is wrong with it
    return kind_of(payload) == "verdicts"


def cmd_report(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.suite import options

    if args.output is not None:
        options.writable_folder(Path(args.output), "--output")  # before any file is read
    paths = [Path(p) for p in args.paths]
    verdict_files = [p for p in paths if p.is_file() and is_verdicts_file(p)]
    missing_verdicts = len(paths) == 1 and not paths[0].exists() and "verdicts" in paths[0].name
    if verdict_files or missing_verdicts:
        if len(paths) > 1:
            raise HarnessError(f"{verdict_files[0]} is a verdicts file, which is rendered on its own; pass it alone, "
                               "or pass only run record files and folders for a table across environments.")
        if args.reference:
            raise HarnessError("--reference picks the environment records are judged against; a verdicts file is "
                               "already judged. Drop --reference, or pass run records instead.")
        return _verdicts(paths[0], args)
    return _records(paths, args)


def _verdicts(path: Path, args: argparse.Namespace) -> int:
    from harness.judging.verdict import regressions
    from harness.reporting import html, render

    verdicts = render.read_verdicts(path)
    if args.format == "html":
        table = html.table(list(render.COLUMNS), [render.row(v, full=True) for v in verdicts],
                           row_class=lambda r: html.verdict_class(str(r["verdict"])))
        found = [html.paragraph(v.regression_message() or "") for v in regressions(verdicts)]
        text = html.page("Harness verdicts", [table, *found], subtitle=f"{render.summary(verdicts)} ({path})")
    else:
        text = {"text": lambda v: render.text_table(v) + "\n", "markdown": render.markdown,
                "csv": render.csv_text}[args.format](verdicts)
    _emit(text, args)
    return 1 if regressions(verdicts) else 0


def _records(paths: list[Path], args: argparse.Namespace) -> int:
    from harness.judging.verdict import regressions
    from harness.reporting import crossenv, crossenv_html
    from harness.store import recordsets

    report = crossenv.build(recordsets.load(paths), reference=args.reference)
    render = {"text": crossenv.text, "markdown": crossenv.markdown, "csv": crossenv.csv_text,
              "html": crossenv_html.page}[args.format]
    _emit(render(report), args)
    return 1 if regressions(report.verdicts) else 0


SUFFIX = {"text": "txt", "markdown": "md", "csv": "csv", "html": "html"}


def _emit(text: str, args: argparse.Namespace) -> None:
    if args.output is None:
        sys.stdout.write(text)
        return
    from harness.suite import options

    target = options.writable_folder(Path(args.output), "--output") / f"report.{SUFFIX[args.format]}"
    target.write_text(text, encoding="utf-8")
    print(f"report: {target}")
