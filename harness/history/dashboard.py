"""The nightly dashboard: one self-contained HTML page (series with seed spread, changes marked and annotated, the
"since last night" verdicts, the nights and what changed in each) and its markdown for a CI job summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.history.series import Series
from harness.judging.changepoints import Change
from harness.judging.verdict import REGRESSED, UNCHANGED, Verdict, format_p
from harness.reporting import html
from harness.reporting import markdown as md
from harness.reporting import render

DEFAULT_PLOTS = 120


@dataclass(frozen=True)
class NightRow:
    name: str
    started: str  # its first record's time
    machines: str  # device class (machine id), one per machine
    records: int
    failed: int
    changed: tuple[str, ...]  # what changed in the environment since the previous night


@dataclass
class Analysis:
    nights: list[NightRow]
    series: list[Series]
    since_last: list[Verdict] = field(default_factory=list)  # the judges: newest night against the one before
    since_last_note: str = ""  # why there is no since-last-night table, where there is none

    @property
    def newest(self) -> str:
        return self.nights[-1].name if self.nights else ""

    def changes(self) -> list[tuple[Series, int, Change]]:
        """Every change once: a cell's change that an all-cells change takes in is shown with it."""
        return [(s, i, c) for s in self.series for i, c in enumerate(s.changes) if i not in s.folded]


def direction(series: Series, change: Change) -> str:
    worse = change.worse(series.higher_is_better)
    if series.key.measure == "primary":
        return "REGRESSED" if worse else "improved"
    if series.key.measure == "peak_memory_mib":
        return "MORE MEMORY" if worse else "less memory"
    if series.key.measure == "mfu":
        return "LOWER MFU" if worse else "higher MFU"
    return "SLOWER" if worse else "faster"


def size_text(series: Series, change: Change) -> str:
    if series.log:
        return f"{change.size:+.1%} [{change.low:+.1%}, {change.high:+.1%}]"
    return f"{change.size:+.4f} [{change.low:+.4f}, {change.high:+.4f}]"


def change_rows(analysis: Analysis) -> list[dict[str, object]]:
    rows = []
    for series, i, change in analysis.changes():
        night = series.points[change.at]
        rows.append({"cell": series.key.cell, "measure": series.label, "machine": _machine(series),
                     "night": night.night, "change": direction(series, change),
                     "status": ("seen once: watch" if change.newest else "confirmed tonight" if i in series.new
                                else "confirmed"), "size [interval]": size_text(series, change),
                     "p": format_p(change.p), "nights judged": f"{change.before} | {change.after}",
                     "cells showing it": _cells(series.shown_in.get(i, [])) if series.everywhere else "",
                     "what changed that night": "; ".join(series.changed_env.get(i, [])) or "nothing recorded"})
    return rows


def _cells(cells: Sequence[str]) -> str:
    return f"{len(cells)}: {', '.join(cells[:6])}{' ...' if len(cells) > 6 else ''}" if cells else "none alone"


def _machine(series: Series) -> str:
    return f"{series.key.device_class} ({series.key.machine_id[:8]})"


def night_rows(analysis: Analysis) -> list[dict[str, object]]:
    return [{"night": n.name, "started": n.started, "machines": n.machines, "records": n.records,
             "failed": n.failed, "changed since the night before": "; ".join(n.changed) or "nothing"}
            for n in analysis.nights]


def summary(analysis: Analysis) -> str:
    changes = analysis.changes()
    worse = sum(c.worse(s.higher_is_better) for s, _, c in changes)
    return (f"{len(analysis.nights)} nights, {len(analysis.series)} series; {len(changes)} change(s) detected "
            f"({worse} for the worse); since last night: "
            + (render.summary(analysis.since_last) if analysis.since_last else analysis.since_last_note))


def _plot(series: Series) -> str:
    points = [(p.order + 1, p.mean, min(p.values), max(p.values)) for p in series.points if p.values]
    marks = [(series.points[c.at].order + 1, f"{direction(series, c).lower()} {size_text(series, c).split(' [')[0]}",
              f"{series.points[c.at].night}: " + ("; ".join(series.changed_env.get(i, [])) or "nothing recorded"))
             for i, c in enumerate(series.changes)]
    marks += [(p.order + 1, f"{p.failed} failed", p.night) for p in series.points if p.failed]
    marks += [(p.order + 1, f"{p.busy} busy", f"{p.night}: {p.busy} run(s) timed while other processes used the "
               "machine, left out") for p in series.points if p.busy]
    title = f"{series.key.cell} {series.label} on {_machine(series)}"
    return html.series_plot(points, title=title, x_label="night", y_label=series.label, marks=marks)


def plotted(analysis: Analysis, most: int) -> tuple[list[Series], int]:
    """Each machine's all-cells series and the series with a change first, then every cell's metric and train step
    time, at most `most`."""
    changed = [s for s in analysis.series if s.everywhere or s.changes or any(p.failed for p in s.points)]
    rest = [s for s in analysis.series if s not in changed and s.key.measure in ("primary", "train_step_s")]
    chosen = (changed + rest)[:most]
    return chosen, len(changed) + len(rest) - len(chosen)


def _verdict_table(verdicts: Sequence[Verdict]) -> str:
    rows = [render.row(v) for v in verdicts]
    columns = tuple(c for c in render.COLUMNS if c != "env")
    return html.table(columns, rows, row_class=lambda r: html.verdict_class(str(r["verdict"])))


def html_page(analysis: Analysis, *, most_plots: int = DEFAULT_PLOTS) -> str:
    blocks = [html.paragraph(summary(analysis))]
    if analysis.since_last:
        shown = [v for v in analysis.since_last if v.verdict != UNCHANGED]
        same = [v for v in analysis.since_last if v.verdict == UNCHANGED]
        body = _verdict_table(shown) if shown else html.paragraph("Every verdict: unchanged.")
        if same:
            body += html.details(f"{len(same)} unchanged", _verdict_table(same))
        blocks.append(html.section(f"Since last night: {analysis.newest} against {analysis.nights[-2].name}", body))
    else:
        blocks.append(html.section("Since last night", html.paragraph(analysis.since_last_note)))
    changes = change_rows(analysis)
    blocks.append(html.section(
        "Changes detected over the nights",
        html.table(tuple(changes[0]), changes, row_class=lambda r: "regressed" if str(r["change"]).isupper()
                   else "improved") if changes else
        html.paragraph("No change in any series: every measure of every cell stayed within its night-to-night "
                       "noise (or the series has fewer nights than a change can be told in).")))
    chosen, left = plotted(analysis, most_plots)
    note = html.paragraph(f"{left} more series not drawn (--plots raises the limit).") if left else ""
    blocks.append(html.section("Series (dots: mean over seeds; bars: the seeds' range; dashed: a change)",
                               html.plots([_plot(s) for s in chosen]) + note))
    nights = night_rows(analysis)
    blocks.append(html.section("Nights", html.table(tuple(nights[0]), nights) if nights else
                               html.paragraph("no night holds a record")))
    first, last = (analysis.nights[0].name, analysis.newest) if analysis.nights else ("", "")
    return html.page("Nightly history", blocks, subtitle=f"{first} .. {last}")


def markdown(analysis: Analysis) -> str:
    lines = ["### Nightly history", "", summary(analysis), ""]
    if analysis.since_last:
        shown = [v for v in analysis.since_last if v.verdict != UNCHANGED]
        lines += [f"**Since last night** ({analysis.newest} against {analysis.nights[-2].name}): "
                  f"{render.summary(analysis.since_last)}", ""]
        if shown:
            rows = [render.row(v, full=True) for v in shown]
            for r, v in zip(rows, shown):
                r["verdict"] = "**REGRESSED**" if v.verdict == REGRESSED else r["verdict"]
            lines += [*md.table(tuple(c for c in render.COLUMNS if c != "env"), rows), ""]
    changes = change_rows(analysis)
    lines += ["**Changes detected over the nights**", ""]
    lines += [*md.table(tuple(changes[0]), changes), ""] if changes else ["none", ""]
    nights = night_rows(analysis)
    lines += ["**Nights**", "", *md.table(tuple(nights[0]), nights)] if nights else []
    return "\n".join(lines) + "\n"


def regressions(analysis: Analysis, worse_now: Sequence[tuple[Series, Change]], failed_now: Sequence[Series]
                ) -> list[str]:
    """What makes the nightly fail: a regression since last night, a cell that failed tonight and not the night
    before, or a change for the worse confirmed tonight (a night seen once is a night to watch: one outlying night
    must not fail the nightly)."""
    said = [v.regression_message() or "" for v in analysis.since_last if v.verdict == REGRESSED]
    said += [f"{s.key.cell}: {s.points[-1].failed} seed(s) failed tonight, none the night before" for s in failed_now]
    said += [f"{s.key.cell} {s.label}: {direction(s, c)} {size_text(s, c)} from {s.points[c.at].night} on "
             f"(confirmed tonight)" for s, c in worse_now]
    return said
