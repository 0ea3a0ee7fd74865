"""Verdict tables as terminal text, markdown for CI comments, CSV, and the versioned verdicts JSON file."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.reporting import markdown as md
from harness.judging.verdict import (IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED, Verdict, format_delta,
                                     format_interval, format_p, format_value, regressions)
from harness.base import jsonfile
from harness.base.jsonfile import JsonKind

COLUMNS = ("cell", "env", "kind", "metric", "baseline", "now", "delta", "interval", "p", "verdict", "note")
VERDICTS = JsonKind("verdicts file", 1, "make one with `pytest suites/` (it writes results/verdicts.json) or "
                    "`harness compare BASELINE CANDIDATE --output DIR`", required=("verdicts",))
NOTE_WIDTH = 64


def _columns(verdicts: Sequence[Verdict]) -> tuple[str, ...]:
    """The env column only when a table holds several environments."""
    return COLUMNS if any(v.env for v in verdicts) else tuple(c for c in COLUMNS if c != "env")


def row(verdict: Verdict, *, full: bool = False) -> dict[str, str]:
    note = verdict.detail if full else (verdict.note or verdict.detail)
    if not full and len(note) > NOTE_WIDTH:
        note = note[:NOTE_WIDTH - 1] + "…"
    return {"cell": verdict.cell, "env": verdict.env, "kind": verdict.kind, "metric": verdict.metric,
            "baseline": format_value(verdict.baseline), "now": format_value(verdict.now),
            "delta": format_delta(verdict), "interval": format_interval(verdict), "p": format_p(verdict.p_value),
            "verdict": verdict.verdict.upper() if verdict.verdict == REGRESSED else verdict.verdict, "note": note}


def text_table(verdicts: Sequence[Verdict]) -> str:
    columns = _columns(verdicts)
    rows = [row(v) for v in verdicts]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip(),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def summary(verdicts: Sequence[Verdict]) -> str:
    counts = {k: sum(v.verdict == k for v in verdicts) for k in (REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARABLE)}
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no verdicts"


def markdown(verdicts: Sequence[Verdict], *, title: str = "Harness verdicts", known_defects: Sequence[str] = ()
             ) -> str:
    columns = _columns(verdicts)
    rows = [row(verdict, full=True) for verdict in verdicts]
    for r, verdict in zip(rows, verdicts):
        if verdict.verdict == REGRESSED:
            r["verdict"] = "**REGRESSED**"
    lines = [f"### {title}", "", summary(verdicts), "", *md.table(columns, rows)]
    found = regressions(verdicts)
    if found:
        lines += ["", f"**{len(found)} regression(s):**", ""] + [f"- {v.regression_message()}" for v in found]
    if known_defects:
        lines += ["", "**Known upstream defects of the installed versions:**", ""] + [f"- {d}" for d in known_defects]
    return "\n".join(lines) + "\n"


def csv_text(verdicts: Sequence[Verdict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for verdict in verdicts:
        writer.writerow(row(verdict, full=True))
    return out.getvalue()


def failure_text(verdicts: Sequence[Verdict], *, against: str = "the committed baselines",
                 accept: str = "accept it with --harness-update-baselines (same selection) and commit "
                               "results/baselines/") -> str:
    """The single failure: what regressed, by how much, how sure, and how to accept an intended change."""
    found = regressions(verdicts)
    lines = [f"{len(found)} regression(s) against {against}:"]
    lines += [f"  - {v.regression_message()}" for v in found]
    lines.append(f"If the change is intended, {accept}.")
    return "\n".join(lines)


def verdicts_payload(verdicts: Sequence[Verdict], **context: Any) -> dict[str, Any]:
    return {"schema_version": VERDICTS.version, **context, "verdicts": [v.to_dict() for v in verdicts]}


def read_verdicts(path: Path) -> list[Verdict]:
    return [Verdict.from_dict(v) for v in jsonfile.read(path, VERDICTS)["verdicts"]]


def write_tables(verdicts: Sequence[Verdict], markdown_path: Path, *, known_defects: Sequence[str] = (),
                 **context: Any) -> list[Path]:
    """The markdown table and, beside it, the verdicts JSON (same name, .json)."""
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(markdown(verdicts, known_defects=known_defects), encoding="utf-8")
    payload = verdicts_payload(verdicts, known_defects=list(known_defects), **context)
    return [markdown_path, jsonfile.write(markdown_path.with_suffix(".json"), payload)]
