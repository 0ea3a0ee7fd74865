"""The results-across-environments report as one self-contained HTML page: the table, the judges' verdicts, the
metric and throughput per environment, per-epoch learning curves and the first optimizer steps' trajectories."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from harness.core.record import RunRecord
from harness.reporting import crossenv, html, render
from harness.reporting.crossenv import CrossEnvReport, Environment

TRAJECTORY = (("loss", "training loss"), ("grad_norm", "grad norm"), ("learning_rate", "learning rate"))


def page(report: CrossEnvReport, *, title: str = "Fine-tuning results across environments") -> str:
    head = crossenv.header_lines(report)
    return html.page(title, [
        section_environments(report),
        section_table(report),
        section_verdicts(report),
        html.section("Metric per environment", _per_task_plots(report, speed=False)),
        html.section("Throughput per environment", _per_task_plots(report, speed=True)),
        html.section("Learning curves", _learning_curves(report)),
        html.section("Trajectories", _trajectories(report)),
    ], subtitle=head[0])


def section_environments(report: CrossEnvReport) -> str:
    counts = report.cells.groupby("env_key")["seeds"].sum()
    rows = [{"column": e.short, "transformers": e.versions.get("transformers", ""),
             "torch": e.versions.get("torch", ""), "datasets": e.versions.get("datasets", ""),
             "env key": e.key, "records": int(counts.get(e.key, 0)),
             "role": "reference" if e == report.reference else ""} for e in report.environments]
    return html.section("Environments", html.table(
        ["column", "transformers", "torch", "datasets", "env key", "records", "role"], rows))


def section_table(report: CrossEnvReport) -> str:
    columns, rows = crossenv.wide_rows(report)
    worst = crossenv.worst_verdicts(report)
    caption = ("primary metric: mean ± std over seeds (n seeds); train samples/s: mean over seeds, with model FLOPs "
               "utilisation and peak memory")
    return html.section("Results", html.table(columns, rows, caption=caption,
                                              row_class=lambda r: html.verdict_class(worst.get(str(r["cell"]), "")))
                        + "".join(html.paragraph(line) for line in crossenv.notes(report)))


def section_verdicts(report: CrossEnvReport) -> str:
    if not report.verdicts:
        return html.section("Verdicts against the reference", html.paragraph(
            f"Nothing to judge: every record is from the reference environment {report.reference.short}."))
    summary = html.paragraph(f"{render.summary(report.verdicts)} (each environment judged against "
                             f"{report.reference.short})")
    table = html.table(list(render.COLUMNS), [render.row(v, full=True) for v in report.verdicts],
                       row_class=lambda r: html.verdict_class(str(r["verdict"])))
    return html.section("Verdicts against the reference", summary + table)


def _per_task_plots(report: CrossEnvReport, *, speed: bool) -> str:
    cells = report.cells
    blocks = []
    for task, rows in cells.groupby("task", sort=True):
        series: dict[str, list[tuple[str, float, float]]] = {}
        for cell in rows.to_dict("records"):
            value, spread = ((cell["samples_per_second"], cell["samples_per_second_std"]) if speed
                             else (cell["mean"], cell["std"]))
            label = cell["model"] + (f" [{cell['settings']}]" if cell["settings"] else "")
            series.setdefault(label, []).append((cell["environment"], value, 0.0 if math.isnan(spread) else spread))
        metric = "train samples/s" if speed else str(rows["metric"].iloc[0])
        blocks.append(html.point_plot(series, title=f"{task}: {metric} (mean ± std over seeds)", y_label=metric,
                                      categories=[e.short for e in report.environments]))
    return html.plots(blocks)


def _seed_mean(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    by_x: dict[float, list[float]] = {}
    for x, y in points:
        by_x.setdefault(x, []).append(y)
    return sorted((x, statistics.fmean(ys)) for x, ys in by_x.items())


def _curve(records: Sequence[RunRecord]) -> list[tuple[float, float]]:
    """(epoch, primary metric on the first eval split) of every evaluation, averaged over seeds."""
    points = []
    for record in records:
        split = record.eval_splits[0] if record.eval_splits else "validation"
        for entry in record.epochs:
            value = (entry.get(split) or {}).get(record.primary_metric)
            if isinstance(value, (int, float)) and entry.get("epoch") is not None:
                points.append((float(entry["epoch"]), float(value)))
    return _seed_mean(points)


def _by_env(report: CrossEnvReport, row: str) -> list[tuple[Environment, Sequence[RunRecord]]]:
    return [(env, [r for r in report.records.get((row, env.key), ()) if r.ok]) for env in report.environments
            if report.records.get((row, env.key))]


def _learning_curves(report: CrossEnvReport) -> str:
    blocks = []
    for row in report.rows:
        runs = _by_env(report, row)
        metric = runs[0][1][0].primary_metric if runs and runs[0][1] else "metric"
        series = {env.short: _curve(records) for env, records in runs}
        blocks.append(html.line_plot(series, title=f"{row}: eval {metric}, mean over seeds", x_label="epoch",
                                     y_label=metric))
    return html.plots(blocks)


def _trajectories(report: CrossEnvReport) -> str:
    parts, missing = [], []
    for row in report.rows:
        runs = [(env, [r for r in records if r.trajectory]) for env, records in _by_env(report, row)]
        runs = [(env, records) for env, records in runs if records]
        if not runs:
            missing.append(row)
            continue
        common = set.intersection(*({r.seed for r in records} for _, records in runs))
        seed = min(common) if common else None
        chosen = {env.short: next(r for r in records if seed is None or r.seed == seed) for env, records in runs}
        which = f"seed {seed}" if seed is not None else "the lowest seed of each environment"
        plots = [html.line_plot({label: [(float(p["step"]), float(p[key])) for p in record.trajectory
                                         if p.get(key) is not None] for label, record in chosen.items()},
                                title=f"{name}, {which}", x_label="optimizer step", y_label=name)
                 for key, name in TRAJECTORY]
        parts.append(html.plots(plots, heading=row))
    if missing:
        parts.append(html.paragraph(f"No trajectory recorded (records older than schema 2, or trajectory_steps 0): "
                                    f"{', '.join(missing)}."))
    lead = html.paragraph("The first optimizer steps of the same seed in each environment: with the same data and "
                          "seed they should overlap up to floating-point noise.")
    return "\n".join([lead, *parts])
