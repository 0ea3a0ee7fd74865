"""An upgrade check's report as markdown (a PR comment), one self-contained HTML page, and JSON. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.reporting import markdown as md
from harness.upgrade import check
from harness.upgrade.check import ERROR, FAILING, REGRESSED, Report, Section

_MARK = {"ok": "ok", "changed": "changed", "regressed": "**REGRESSED**", "error": "**ERROR**"}


def headline(report: Report) -> str:
    old, new = report.sides
    regressed = [s.stage for s in report.sections if s.status == REGRESSED]
    undecided = [s.stage for s in report.sections if s.status == ERROR]
    parts = ([f"REGRESSED ({', '.join(regressed)})"] if regressed else []) + \
        ([f"COULD NOT TELL ({', '.join(undecided)})"] if undecided else [])
    verdict = "; ".join(parts) or "no regression"
    return f"{old['title']} → {new['title']}: {verdict}"




TIME_COLUMNS = ("stage", "waited (s)", "old side", "new side")
TIME_NOTE = ("waited: what the check waited for the stage (each side's work runs in the background from the start, "
             "so a stage can find it done); old/new side: the seconds its own work took, or the cache entry it came "
             "from and when that was made")


def stage_times(report: Report) -> list[dict[str, str]]:
    """One row per section: seconds waited, and per side the work's seconds or its cache entry; then the total."""
    rows = [{"stage": s.stage, "waited (s)": f"{s.seconds:.0f}", "old side": s.sources.get("from", "-"),
             "new side": s.sources.get("to", "-")} for s in report.sections]
    hits = sum("cache" in v for s in report.sections for v in s.sources.values())
    rows.append({"stage": "whole check", "waited (s)": f"{report.seconds:.0f}",
                 "old side": f"{hits} result(s) from the cache" if hits else "-", "new side": ""})
    return rows


def markdown(report: Report) -> str:
    old, new = report.sides
    lines = [f"## Upgrade check: {headline(report)}", "",
             f"- old: `{old['spec']}` ({old['title']})" + (f", patched by `{old['patch']}`" if old["patch"] else ""),
             f"- new: `{new['spec']}` ({new['title']})" + (f", patched by `{new['patch']}`" if new["patch"] else ""),
             f"- tier `{report.options['tier']}`, {report.seconds:.0f} s, started {report.started}",
             *([f"- {report.options['finetune']['describe']}"] if report.options.get("finetune") else
               ["- no fine-tuning of yours given (--config, --script, harness.toml or [tool.harness]): the tier's "
                "cells only, and every new known defect counts as a regression"]), "",
             *md.table(("stage", "status", "summary", "seconds"),
                     [{"stage": s.stage, "status": _MARK.get(s.status, s.status), "summary": s.summary,
                       "seconds": f"{s.seconds:.0f}"} for s in report.sections]), "",
             "#### Stage times", "", *md.table(TIME_COLUMNS, stage_times(report)), "",
             *[f"- {note}" for note in (*report.cache_notes, TIME_NOTE)], ""]
    for section in report.sections:
        lines += [f"### {section.title}", "", f"{_MARK.get(section.status, section.status)}: {section.summary}", ""]
        if section.rows:
            lines += [*md.table(section.columns, section.rows), ""]
        lines += [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
    lines += ["### Known upstream defects", ""]
    for side in report.sides:
        defects = side["known_defects"]
        lines.append(f"- {side['name']} ({side['versions'].get('transformers', '?')}): "
                     + ("none listed" if not defects else "; ".join(f"[{d['id']}]({d['link']})" for d in defects)))
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- HTML

def _row_class(row: Mapping[str, object]) -> str:
    from harness.reporting import html

    text = " ".join(str(v) for v in row.values()).lower()
    if "regressed" in text or "fails" in text or "breaks" in text or row.get("new") == "failed":
        return "regressed"
    return html.verdict_class(str(row.get("verdict", "")))


def html_page(report: Report) -> str:
    from harness.reporting import html

    overview = html.table(("stage", "status", "summary", "seconds"),
                          [{"stage": s.stage, "status": s.status, "summary": s.summary, "seconds": s.seconds}
                           for s in report.sections],
                          row_class=lambda r: "regressed" if r["status"] in FAILING else "")
    sides = html.table(("side", "spec", "versions", "patch"),
                       [{"side": s["name"], "spec": s["spec"], "versions": s["title"], "patch": s["patch"] or ""}
                        for s in report.sides])
    times = html.table(TIME_COLUMNS, stage_times(report))
    notes = "".join(html.paragraph(note) for note in (*report.cache_notes, TIME_NOTE))
    blocks = [html.section("Verdict", sides + overview), html.section("Stage times", times + notes)]
    for section in report.sections:
        body = [html.paragraph(f"{section.status}: {section.summary}")]
        if section.rows:
            body.append(html.table(section.columns, section.rows, row_class=_row_class))
        body += [html.paragraph(note) for note in section.notes]
        figures = check.figures(section)
        if figures:
            body.append(html.plots(figures))
        blocks.append(html.section(section.title, "\n".join(body)))
    defects = [{"side": side["name"], "defect": d["id"], "versions": d["versions"], "link": d["link"],
                "summary": d["summary"]} for side in report.sides for d in side["known_defects"]]
    blocks.append(html.section("Known upstream defects", html.table(("side", "defect", "versions", "link",
                                                                     "summary"), defects)
                               if defects else html.paragraph("none listed for either side")))
    return html.page("Upgrade check", blocks, subtitle=headline(report))


def write(report: Report, folder: Path) -> dict[str, Path]:
    """upgrade-check.md, .html and .json in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"upgrade-check.{ext}" for ext in ("md", "html", "json")}
    paths["md"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(html_page(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report.to_dict(), indent=1, default=str), encoding="utf-8")
    return paths


def exit_status(report: Report) -> int:
    """1 on a regression, 3 when a stage could not decide (never 0: nothing unchecked passes), else 0."""
    statuses = {s.status for s in report.sections}
    return 1 if REGRESSED in statuses else COULD_NOT_TELL if ERROR in statuses else 0


COULD_NOT_TELL = 3  # as `harness compare` exits when nothing could be judged


def from_json(payload: Mapping[str, Any]) -> Report:
    """A report read back from its JSON (to re-render it)."""
    sections = [Section(**{k: (tuple(v) if k == "columns" else v) for k, v in s.items()})
                for s in payload["sections"]]
    return Report(sides=list(payload["sides"]), options=dict(payload["options"]), sections=sections,
                  started=payload.get("started", ""), seconds=float(payload.get("seconds", 0.0)),
                  cache_notes=list(payload.get("cache_notes", [])))
