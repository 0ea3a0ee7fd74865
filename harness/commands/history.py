"""`harness history NIGHTS...`: the nightly series of every cell and measure, the changes in them (when, how much,
what changed in the environment that night), the newest night judged against the one before, and a dashboard;
exit 1 when the newest night regressed, 3 when there are fewer than two nights to judge."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.commands.compare import NOTHING_JUDGED
from harness.suite import options


def add_parser(subparsers: Any) -> None:
    his = subparsers.add_parser(
        "history", help="nightly series with change-point detection and a dashboard; exit 1 when the newest night "
                        "regressed",
        description="Read nights of run records (each night a folder holding runs/, as `harness run --output DIR` "
                    "or `harness merge --output DIR` wrote it; or folders of such nights), ordered by their first "
                    "record's time. Per cell, settings, machine and measure (primary metric, train s/step, eval "
                    "s/batch, MFU, peak memory) it finds level changes over the nights and names the night, the size "
                    "with an interval and what changed in the environment; it judges the newest night against the "
                    "one before with every judge (as `harness compare`). Series never mix machines, device "
                    "classes or settings.")
    his.add_argument("paths", nargs="+", metavar="NIGHTS", help="night folders, or folders holding them")
    his.add_argument("--output", metavar="DIR", help="write DIR/history.html (the dashboard), DIR/history.md (for a "
                     "CI job summary) and DIR/history.json. Default: print the markdown")
    his.add_argument("--plots", type=options.positive_int, default=120, metavar="N",
                     help="most series drawn in the dashboard (changed ones first). Default: 120")
    his.add_argument("--alpha", type=options.probability, default=0.001, metavar="P",
                     help="a change must be beyond doubt at this level (Student's test between the nights around it). "
                          "Default: 0.001")
    his.add_argument("--window", type=options.positive_int, default=30, metavar="N",
                     help="most nights each side of a change it is judged on. Default: 30")
    his.add_argument("--no-index", action="store_true",
                     help="parse every record file instead of reading what did not change from the file index "
                          "(HARNESS_CACHE/history/index.sqlite)")
    his.set_defaults(handler=cmd_history)


def _since_last(found: list[Any]) -> tuple[list[Any], str]:
    from harness.judging import registry
    from harness.store import recordsets

    if len(found) < 2:
        return [], "one night only: nothing to judge it against"
    before, newest = recordsets.load([found[-2].root]), recordsets.load([found[-1].root])
    return registry.judge(newest, before), ""


def cmd_history(args: argparse.Namespace) -> int:
    from harness.core.models import cache_root
    from harness.history import dashboard, series
    from harness.judging.verdict import JUDGED
    from harness.reporting import render
    from harness.store import history

    if args.output:
        options.writable_folder(Path(args.output), "--output")
    found = history.nights(args.paths)
    loaded = history.load(found, index=None if args.no_index else cache_root() / "history" / "index.sqlite")
    table = loaded.records
    by_name = {n.name: n for n in found}
    all_series = series.build(loaded, alpha=args.alpha, window=args.window)
    changed = series.night_changes(loaded)
    ordered, rows = [], []
    for (_, name), part in (table.groupby(["night_order", "night"], sort=True) if not table.empty else []):
        machines = sorted({f"{d} ({m[:8]})" for d, m in zip(part["device_class"], part["machine_id"])})
        ordered.append(by_name.pop(name))
        rows.append(dashboard.NightRow(name, str(part["created_at"].min()), ", ".join(machines), len(part),
                                       int((part["status"] == "failed").sum()), tuple(changed.get(name, []))))
    if by_name:
        print(f"note: {len(by_name)} night(s) hold no run record and are left out: {', '.join(list(by_name)[:5])}"
              f"{' ...' if len(by_name) > 5 else ''}", file=sys.stderr)
    verdicts, note = _since_last(ordered)
    analysis = dashboard.Analysis(rows, all_series, verdicts, note)
    print(f"{len(ordered)} nights, {len(table)} records ({loaded.parsed} parsed, the rest from the index)",
          file=sys.stderr)
    text = dashboard.markdown(analysis)
    if args.output:
        out = Path(args.output)
        (out / "history.html").write_text(dashboard.html_page(analysis, most_plots=args.plots), encoding="utf-8")
        (out / "history.md").write_text(text, encoding="utf-8")
        _write_json(out / "history.json", analysis)
        print(f"{dashboard.summary(analysis)}\ndashboard: {out / 'history.html'}, {out / 'history.md'}, "
              f"{out / 'history.json'}")
    else:
        print(text)
    failing = dashboard.regressions(analysis, series.worse_now(all_series), series.failed_now(all_series))
    if failing:
        print(f"\n{len(failing)} regression(s) on the newest night ({analysis.newest}):\n  - "
              + "\n  - ".join(failing))
        return 1
    if not any(v.verdict in JUDGED for v in verdicts):
        print(f"\nnothing judged since last night: {note or render.summary(verdicts)}", file=sys.stderr)
        return NOTHING_JUDGED
    return 0


def _write_json(path: Path, analysis: Any) -> None:
    from harness.base import jsonfile
    from harness.history import dashboard

    changes = [{"cell": s.key.group, "settings": s.key.settings, "measure": s.key.measure, "label": s.label,
                "device_class": s.key.device_class, "machine_id": s.key.machine_id, "night": s.points[c.at].night,
                "newest": c.newest, "size": c.size, "interval": [c.low, c.high], "p_value": c.p,
                "relative": s.log, "worse": c.worse(s.higher_is_better), "nights_before": c.before,
                "nights_after": c.after, "what_changed": s.changed_env.get(i, []),
                "cells_showing_it": s.shown_in.get(i, []) if s.everywhere else None}
               for s, i, c in analysis.changes()]
    jsonfile.write(path, {"schema_version": 1, "nights": dashboard.night_rows(analysis), "changes": changes,
                          "since_last_night": [v.to_dict() for v in analysis.since_last],
                          "since_last_night_note": analysis.since_last_note})
