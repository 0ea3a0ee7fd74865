"""Rendering verdicts (terminal text, markdown for CI comments, CSV) and the `harness compare | report` commands."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.compare import (NOT_COMPARABLE, REGRESSED, Verdict, format_delta, format_interval, format_p,
                             format_value, regressions)

COLUMNS = ("cell", "kind", "metric", "baseline", "now", "delta", "interval", "p", "verdict", "note")
VERDICTS_FILE_VERSION = 1


def short_note(verdict: Verdict, width: int = 64) -> str:
    extras = verdict.extras
    if verdict.verdict == NOT_COMPARABLE:
        note = verdict.detail
    elif verdict.kind == "quality":
        parts = []
        if "flip_rate" in extras:
            parts.append(f"{extras['flip_rate']:.1%} preds changed")
        parts.append(f"MDE {extras.get('mde', float('nan')):.3f}")
        parts.append(f"{extras.get('seeds_now', '?')} seed(s)")
        note = ", ".join(parts)
    elif verdict.kind == "throughput":
        note = next((part for part in verdict.detail.split("; ") if "samples/s" in part), "")
    else:
        note = verdict.detail.split("; ")[0]
    return note if len(note) <= width else note[:width - 1] + "…"


def row(verdict: Verdict, *, full: bool = False) -> dict[str, str]:
    return {"cell": verdict.cell, "kind": verdict.kind, "metric": verdict.metric,
            "baseline": format_value(verdict.baseline), "now": format_value(verdict.now),
            "delta": format_delta(verdict), "interval": format_interval(verdict), "p": format_p(verdict.p_value),
            "verdict": verdict.verdict.upper() if verdict.verdict == REGRESSED else verdict.verdict,
            "note": verdict.detail if full else short_note(verdict)}


def text_table(verdicts: Sequence[Verdict]) -> str:
    rows = [row(v) for v in verdicts]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip(),
             "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(verdicts: Sequence[Verdict], *, title: str = "Harness verdicts") -> str:
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("regressed", "improved", "unchanged",
                                                                 NOT_COMPARABLE)}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    lines = [f"### {title}", "", summary or "no verdicts", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for verdict in verdicts:
        r = row(verdict, full=True)
        if verdict.verdict == REGRESSED:
            r["verdict"] = "**REGRESSED**"
        lines.append("| " + " | ".join(_md_cell(r[c]) for c in COLUMNS) + " |")
    found = regressions(verdicts)
    if found:
        lines += ["", f"**{len(found)} regression(s):**", ""] + [f"- {v.regression_message()}" for v in found]
    return "\n".join(lines) + "\n"


def csv_text(verdicts: Sequence[Verdict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for verdict in verdicts:
        writer.writerow(row(verdict, full=True))
    return out.getvalue()


def failure_text(verdicts: Sequence[Verdict]) -> str:
    """The single end-of-session failure: what regressed, by how much, how sure."""
    found = regressions(verdicts)
    lines = [f"{len(found)} regression(s) against the committed baselines:"]
    lines += [f"  - {v.regression_message()}" for v in found]
    lines.append("If the change is intended, accept it with --harness-update-baselines (same selection) and commit "
                 "results/baselines/.")
    return "\n".join(lines)


def verdicts_payload(verdicts: Sequence[Verdict], **context: Any) -> dict[str, Any]:
    return {"schema_version": VERDICTS_FILE_VERSION, **context, "verdicts": [v.to_dict() for v in verdicts]}


def read_verdicts(path: Path) -> list[Verdict]:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"harness report: cannot read {path}: {err}") from err
    if payload.get("schema_version") != VERDICTS_FILE_VERSION:
        raise SystemExit(f"harness report: {path} has verdict file version {payload.get('schema_version')!r}; this "
                         f"harness reads version {VERDICTS_FILE_VERSION}. Re-run the suites to regenerate it.")
    return [Verdict.from_dict(v) for v in payload["verdicts"]]


# ------------------------------------------------------------------------------------------------ CLI

def add_cli(subparsers: Any) -> None:
    """Register `harness compare` and `harness report` on the main CLI's subparsers."""
    from harness.tiers import TIERS

    cmp = subparsers.add_parser("compare", help="judge run records against the committed baselines (quality and "
                                "time-to-quality); exit 1 on a regression")
    cmp.add_argument("records", nargs="+", metavar="PATH",
                     help="run record JSON files or folders holding them (e.g. results/runs)")
    cmp.add_argument("--tier", choices=sorted(TIERS), default="smoke", help="baseline tier. Default: smoke")
    cmp.add_argument("--baselines", metavar="DIR", default="results/baselines",
                     help="baselines root. Default: results/baselines")
    cmp.add_argument("--alpha", type=_probability, default=0.01, metavar="P", help="significance level. Default: 0.01")
    cmp.add_argument("--ttq-fraction", type=_probability, default=0.9, metavar="F",
                     help="time-to-quality target as a fraction of the baseline's final metric. Default: 0.9")
    cmp.add_argument("--markdown", metavar="FILE", help="also write the table as markdown. Default: none")
    cmp.set_defaults(handler=cmd_compare)

    rep = subparsers.add_parser("report", help="render a verdicts file written by `pytest suites/`")
    rep.add_argument("verdicts", nargs="?", default="results/verdicts.json", metavar="FILE",
                     help="verdicts JSON written by the suites. Default: results/verdicts.json")
    rep.add_argument("--format", choices=("text", "markdown", "csv"), default="text", help="Default: text")
    rep.set_defaults(handler=cmd_report)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def cmd_compare(args: argparse.Namespace) -> int:
    from harness import baselines, results

    paths: list[Path] = []
    for item in args.records:
        path = Path(item)
        if path.is_dir():
            paths += sorted(path.glob("**/*.json"))
        elif path.is_file():
            paths.append(path)
        else:
            raise SystemExit(f"harness compare: {item} does not exist; pass run record files or a folder such as "
                             "results/runs.")
    records = [r for r in results.load_records(paths) if r.get("status") == "ok"]
    if not records:
        raise SystemExit("harness compare: no successful run records found in " + ", ".join(args.records))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["config"]["task"], record["config"]["model"]), []).append(record)
    verdicts: list[Verdict] = []
    for (task, model), found in sorted(groups.items()):
        latest = {r["config"]["seed"]: r for r in sorted(found, key=lambda r: r["created_at"])}  # newest per seed
        chosen = [latest[s] for s in sorted(latest)]
        stored = baselines.quality_group(Path(args.baselines), args.tier, task, model)
        group = baselines.group_id(task, model)
        verdicts += baselines.judge_quality(group, chosen, stored, alpha=args.alpha)
        verdicts += baselines.judge_convergence(group, chosen, stored, fraction=args.ttq_fraction)
    print(text_table(verdicts))
    if args.markdown:
        Path(args.markdown).write_text(markdown(verdicts), encoding="utf-8")
    if regressions(verdicts):
        print("\n" + failure_text(verdicts), file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    verdicts = read_verdicts(Path(args.verdicts))
    render = {"text": text_table, "markdown": markdown, "csv": csv_text}[args.format]
    print(render(verdicts), end="" if args.format != "text" else "\n")
    return 1 if regressions(verdicts) else 0
