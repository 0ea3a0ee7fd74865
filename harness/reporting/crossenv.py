"""Results across environments: any set of run records as one table (rows = cells, columns = environments).

Each value is the primary metric's mean ± its spread over seeds (sample std) and the train samples/s with the model
FLOPs utilisation and peak memory; every environment is judged against a reference environment (the oldest
transformers unless named) with the registered judges, whose verdicts mark the deltas. Where a published result exists
for the cell (run_glue's bert-base-cased), it is shown as an external column, never judged against. Pure given the
records: no file is read or written here.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from packaging.version import InvalidVersion, Version

from harness.reporting import markdown as md
from harness.core import config as run_config
from harness.data import references
from harness.core.record import RunRecord
from harness.errors import HarnessError
from harness.judging import registry
from harness.judging.comparability import JUDGED_CONFIG
from harness.core.evidence import Evidence
from harness.judging.judge import JudgeSettings
from harness.judging.quality import QualityJudge
from harness.judging.throughput import ThroughputJudge
from harness.judging.verdict import IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED, Verdict, regressions

PACKAGES = ("transformers", "torch", "datasets")  # what tells the columns apart
SHORT = {"transformers": "tf", "torch": "torch", "datasets": "ds"}
KINDS = (QualityJudge.kind, ThroughputJudge.kind)  # the judges whose verdicts mark the table's two values
MARKS = {IMPROVED: "▲", REGRESSED: "▼", UNCHANGED: "=", NOT_COMPARABLE: "?"}
LEGEND = ("Δ against the reference environment; marks from the judges: ▲ improved, ▼ regressed, "
          "= no significant change, ? not comparable (the verdict table says why)")
MISSING_HINT = "the reference environment has no run of this cell: run it there too"
PUBLISHED_COLUMN = "published (run_glue)"  # harness.data.references: an external reference, never judged against
_RUN_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(run_config.RunConfig)
                        if f.default is not dataclasses.MISSING}


@dataclass(frozen=True)
class Environment:
    key: str  # env_key of the records
    versions: Mapping[str, str]  # package -> version, for PACKAGES
    label: str  # "transformers 4.57.6, torch 2.13.0, datasets 5.2.0"
    short: str  # the column header: "tf 4.57.6", more packages only where needed to tell columns apart

    @property
    def transformers(self) -> str:
        return self.versions.get("transformers", "")


@dataclass(frozen=True)
class CrossEnvReport:
    environments: tuple[Environment, ...]  # oldest transformers first
    reference: Environment
    cells: pd.DataFrame  # one row per (row, environment): the long table (see CELL_COLUMNS)
    records: Mapping[tuple[str, str], tuple[RunRecord, ...]]  # (row, env key) -> newest record per seed
    verdicts: tuple[Verdict, ...]  # every environment's verdicts against the reference

    @property
    def rows(self) -> list[str]:
        return list(dict.fromkeys(self.cells["row"]))


CELL_COLUMNS = ("row", "task", "model", "settings", "environment", "env_key", "transformers", "torch", "datasets",
                "reference", "metric", "seeds", "failed", "mean", "std", "delta", "quality_verdict", "quality_p",
                "samples_per_second", "samples_per_second_std", "throughput_delta", "throughput_verdict",
                "throughput_p", "mfu", "peak_memory_bytes", "published")


# ------------------------------------------------------------------------------------------------ building

def build(evidence: Evidence, *, reference: str | None = None,
          settings: JudgeSettings = JudgeSettings(missing_hint=MISSING_HINT)) -> CrossEnvReport:
    """The report over every run record in `evidence`; HarnessError when it holds none or `reference` is unknown."""
    if not evidence.records:
        raise HarnessError("the named files and folders hold no run record (only measurements or nothing); pass "
                           "folders written by `harness run --output DIR`, `pytest suites/ --harness-record-dir "
                           "DIR` or results/baselines.")
    latest = newest_per_seed(evidence.records)
    envs = environments(p.record for p in latest)
    ref = pick_reference(envs, reference)
    verdicts = judge_against_reference(latest, evidence, envs, ref, settings)
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for placed in latest:
        grouped.setdefault((placed.row, placed.record.env_key), []).append(placed.record)
    records = {key: tuple(sorted(found, key=lambda r: r.seed)) for key, found in grouped.items()}
    cells = _cells(records, {p.row: p.settings for p in latest}, envs, ref, verdicts)
    return CrossEnvReport(tuple(envs), ref, cells, records, tuple(verdicts))


def _judged_settings(record: RunRecord) -> dict[str, object]:
    """The config fields that change what a cell learns (a field missing from an older record: its default)."""
    return {key: record.config.get(key, _RUN_CONFIG_DEFAULTS.get(key)) for key in JUDGED_CONFIG}


def settings_labels(records: Sequence[RunRecord]) -> dict[int, str]:
    """id(record) -> "" for a cell group run with one set of settings; where a group was run with several, the
    settings that tell them apart, e.g. "learning_rate=0.0005, epochs=3.0"."""
    by_group: dict[str, list[RunRecord]] = {}
    for record in records:
        by_group.setdefault(record.group, []).append(record)
    labels: dict[int, str] = {}
    for group_records in by_group.values():
        settings = [_judged_settings(r) for r in group_records]
        varying = [k for k in JUDGED_CONFIG if len({repr(s[k]) for s in settings}) > 1]
        for record, values in zip(group_records, settings):
            labels[id(record)] = ", ".join(f"{k}={values[k]}" for k in varying)
    return labels


@dataclass(frozen=True)
class Placed:
    """A record with the table row it lands in."""

    row: str  # the cell group, plus its settings where the group was run with several
    settings: str
    record: RunRecord


def newest_per_seed(records: Sequence[RunRecord]) -> list[Placed]:
    """The newest record of each (row, environment, seed), placed in its row."""
    labels = settings_labels(records)
    newest: dict[tuple[str, str, int], Placed] = {}
    for record in sorted(records, key=lambda r: r.created_at):
        label = labels[id(record)]
        row = f"{record.group} [{label}]" if label else record.group
        newest[(row, record.env_key, record.seed)] = Placed(row, label, record)
    return [placed for _, placed in sorted(newest.items(), key=lambda kv: kv[0])]


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)  # unknown versions sort after every real one


def environments(records: Iterable[RunRecord]) -> list[Environment]:
    """One per env key, oldest transformers (then torch, datasets) first, with column headers that tell them apart."""
    found: dict[str, dict[str, str]] = {}
    for record in records:
        packages = record.env.get("packages") or {}
        found.setdefault(record.env_key, {p: str(packages.get(p) or "") for p in PACKAGES})
    keys = sorted(found, key=lambda k: (*(_version_key(found[k][p]) for p in PACKAGES), k))
    shorts = _short_labels({k: found[k] for k in keys})
    return [Environment(k, found[k], ", ".join(f"{p} {v}" for p, v in found[k].items() if v) or k, shorts[k])
            for k in keys]


def _short_labels(versions: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The fewest packages (transformers first) that give every environment its own header, else + the key."""
    for count in range(1, len(PACKAGES) + 1):
        labels = {k: " · ".join(f"{SHORT[p]} {v[p]}" for p in PACKAGES[:count] if v[p]) or k
                  for k, v in versions.items()}
        if len(set(labels.values())) == len(labels):
            return labels
    return {k: f"{labels[k]} ({k})" for k in versions}


def pick_reference(envs: Sequence[Environment], wanted: str | None) -> Environment:
    """The named environment (env key, transformers version, header or label), else the oldest transformers."""
    if wanted is None:
        return envs[0]
    matches = [e for e in envs if wanted in (e.key, e.transformers, e.short, e.label)]
    if len(matches) == 1:
        return matches[0]
    choices = "; ".join(f"{e.transformers or e.key} ({e.key})" for e in envs)
    what = "matches none" if not matches else f"matches {len(matches)} environments"
    raise HarnessError(f"--reference {wanted!r} {what} of the records' environments. Allowed: an env key or a "
                       f"transformers version that names exactly one of: {choices}. Use the env key to pick one of "
                       "several with the same version.")


def judge_against_reference(latest: Sequence[Placed], evidence: Evidence,
                            envs: Sequence[Environment], ref: Environment,
                            settings: JudgeSettings) -> list[Verdict]:
    """Each environment's records judged against the reference's, one settings variant at a time (so a cell run
    with other settings is judged against the same settings). Verdicts carry the row as cell, the env label."""
    variants = sorted({p.settings for p in latest})
    verdicts: list[Verdict] = []
    for env in envs:
        if env.key == ref.key:
            continue
        for variant in variants:
            def side(key: str) -> Evidence:
                records = [p.record for p in latest if p.record.env_key == key and p.settings == variant]
                # benchmark measurements carry the preset's settings: they join the default variant only
                measured = [m for m in evidence.measurements if m.env_key == key] if not variant else []
                return Evidence(records=records, measurements=measured)

            candidate = side(env.key)
            if not candidate.records:
                continue
            for verdict in registry.judge(candidate, side(ref.key), settings, kinds=KINDS):
                cell = f"{verdict.cell} [{variant}]" if variant else verdict.cell
                verdicts.append(dataclasses.replace(verdict, cell=cell, env=env.short))
    return verdicts


def _verdict_for(verdicts: Sequence[Verdict], row: str, env: Environment, kind: str) -> Verdict | None:
    """The verdict behind a table value: the first split's quality, the train part's throughput."""
    group, _, variant = row.partition(" [")
    for verdict in verdicts:
        if verdict.kind != kind or verdict.env != env.short:
            continue
        cell_group, _, cell_variant = verdict.cell.partition(" [")
        if cell_variant != variant or not (cell_group == group or cell_group.startswith(group + "[")):
            continue
        if kind == ThroughputJudge.kind and not verdict.metric.startswith("train"):
            continue
        return verdict
    return None


def _cells(records: Mapping[tuple[str, str], Sequence[RunRecord]], settings: Mapping[str, str],
           envs: Sequence[Environment], ref: Environment, verdicts: Sequence[Verdict]) -> pd.DataFrame:
    rows = []
    for (row, env_key), found in records.items():
        env = next(e for e in envs if e.key == env_key)
        ok = [r for r in found if r.ok]
        first = found[0]
        values = pd.Series([r.primary() for r in ok], dtype="float64")
        speeds = pd.Series([r.timings.get("train_samples_per_second") for r in ok], dtype="float64")
        quality, throughput = (_verdict_for(verdicts, row, env, k) for k in KINDS)
        rows.append({
            "row": row, "task": first.task_name, "model": first.model_name, "settings": settings[row],
            "environment": env.short, "env_key": env_key, **{p: env.versions.get(p, "") for p in PACKAGES},
            "reference": env_key == ref.key, "metric": first.primary_metric, "seeds": len(found),
            "failed": len(found) - len(ok), "mean": values.mean(), "std": values.std(ddof=1),
            "quality_verdict": quality.verdict if quality else "", "quality_p": quality.p_value if quality else None,
            "samples_per_second": speeds.mean(), "samples_per_second_std": speeds.std(ddof=1),
            "throughput_verdict": throughput.verdict if throughput else "",
            "throughput_p": throughput.p_value if throughput else None,
            "mfu": pd.Series([(r.timings.get("model_flops") or {}).get("mfu") for r in ok], dtype="float64").mean(),
            "peak_memory_bytes": max((m for m in map(_peak_memory, ok) if m), default=None),
            "published": _published(first)})
    frame = pd.DataFrame(rows)
    order = {e.key: i for i, e in enumerate(envs)}
    frame = frame.sort_values(["row", "env_key"], key=lambda s: s.map(order) if s.name == "env_key" else s)
    reference = frame[frame["reference"]].set_index("row")
    ref_mean = frame["row"].map(reference["mean"])
    ref_speed = frame["row"].map(reference["samples_per_second"])
    frame["delta"] = (frame["mean"] - ref_mean).where(~frame["reference"])
    frame["throughput_delta"] = (frame["samples_per_second"] / ref_speed - 1).where(~frame["reference"])
    return frame.reset_index(drop=True)[list(CELL_COLUMNS)]


def _peak_memory(record: RunRecord) -> int | None:
    """The device's peak: CUDA's allocator on GPU, the process's resident set on CPU."""
    return record.timings.get("cuda_max_allocated_bytes") or record.timings.get("peak_rss_bytes")


def _published(record: RunRecord) -> float | None:
    found = references.reference(record.model_name, record.task_name, record.primary_metric, record.eval_splits[0],
                                 str(record.config.get("precision", "fp32")))
    return found.value if found else None


# ------------------------------------------------------------------------------------------------ formatting

def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def metric_text(cell: Mapping[str, object]) -> str:
    """"0.8086 ± 0.0123 (n=3)  Δ -0.0312 ▼"; "failed" when every seed failed."""
    n_ok = int(cell["seeds"]) - int(cell["failed"])
    if n_ok == 0:
        return f"failed (n={cell['seeds']})"
    spread = _number(cell["std"], 2)
    text = f"{_number(cell['mean'])}{' ± ' + spread if spread else ''} (n={n_ok})"
    if cell["failed"]:
        text += f", {cell['failed']} failed"
    return text + _delta(cell["delta"], str(cell["quality_verdict"]), bool(cell["reference"]), relative=False)


def speed_text(cell: Mapping[str, object]) -> str:
    """"1958 · MFU 2.1 % · 0.85 GiB  Δ +3.1% =" (samples/s, model FLOPs utilisation, peak memory)."""
    mean = _number(cell["samples_per_second"])
    if not mean:
        return ""
    mfu, memory = cell.get("mfu"), cell.get("peak_memory_bytes")
    if isinstance(mfu, float) and not math.isnan(mfu):
        mean += f" · MFU {mfu:.1%}"
    if isinstance(memory, (int, float)) and not math.isnan(memory):
        mean += f" · {memory / 2**30:.2f} GiB"
    return mean + _delta(cell["throughput_delta"], str(cell["throughput_verdict"]), bool(cell["reference"]),
                         relative=True)


def _delta(delta: object, verdict: str, reference: bool, *, relative: bool) -> str:
    if reference:
        return ""  # the column header says "(ref)"
    if not isinstance(delta, float) or math.isnan(delta):
        return f" {MARKS.get(verdict, '')}".rstrip()
    shown = f"{delta:+.1%}" if relative else f"{delta:+.4f}"
    return f"  Δ {shown} {MARKS.get(verdict, '')}".rstrip()


def wide_rows(report: CrossEnvReport) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of the table as shown: cell (with its settings where a cell ran with several), metric, the
    published result where any cell has one, then one metric column and one samples/s column per environment."""
    envs = report.environments
    published = [PUBLISHED_COLUMN] if report.cells["published"].notna().any() else []
    first = 2 + len(published)
    columns = ["cell", "metric", *published,
               *(f"{e.short}{' (ref)' if e == report.reference else ''}" for e in envs),
               *(f"{e.short} samples/s" for e in envs)]
    metric_columns = dict(zip((e.key for e in envs), columns[first:first + len(envs)]))
    speed_columns = dict(zip((e.key for e in envs), columns[first + len(envs):]))
    rows: dict[str, dict[str, str]] = {}
    for cell in report.cells.to_dict("records"):
        row = rows.setdefault(cell["row"], {"cell": cell["row"], "metric": cell["metric"]})
        if published:
            row.setdefault(PUBLISHED_COLUMN, _number(cell["published"]))
        row[metric_columns[cell["env_key"]]] = metric_text(cell)
        row[speed_columns[cell["env_key"]]] = speed_text(cell)
    return columns, list(rows.values())


def worst_verdicts(report: CrossEnvReport) -> dict[str, str]:
    """Row -> its most telling verdict: regressed, else improved, else not comparable, else unchanged ("" if none)."""
    out = {}
    for row, cells in report.cells.groupby("row", sort=False):
        found = set(cells["quality_verdict"]) | set(cells["throughput_verdict"])
        out[str(row)] = next((v for v in (REGRESSED, IMPROVED, NOT_COMPARABLE, UNCHANGED) if v in found), "")
    return out


def header_lines(report: CrossEnvReport) -> list[str]:
    count = sum(len(found) for found in report.records.values())
    lines = [f"{count} run record(s), {len(report.rows)} cell(s), {len(report.environments)} environment(s); "
             f"reference: {report.reference.short}"]
    lines += [f"  {e.short}: {e.label} (env key {e.key})" for e in report.environments]
    return lines


def text(report: CrossEnvReport) -> str:
    columns, rows = wide_rows(report)
    widths = {c: max([len(c)] + [len(r.get(c, "")) for r in rows]) for c in columns}
    lines = header_lines(report) + ["", "  ".join(c.ljust(widths[c]) for c in columns).rstrip(),
                                        "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(r.get(c, "").ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines + ["", *notes(report), *_regression_lines(report)]) + "\n"


def markdown(report: CrossEnvReport, *, title: str = "Results across environments") -> str:
    columns, rows = wide_rows(report)
    head = header_lines(report)
    lines = [f"### {title}", "", head[0], "", *(f"- {line.strip()}" for line in head[1:]), "",
             *md.table(columns, rows)]
    return "\n".join(lines + ["", *notes(report), *_regression_lines(report)]) + "\n"


def notes(report: CrossEnvReport) -> list[str]:
    """The legend, and where the published column comes from when it is shown."""
    shown = report.cells["published"].notna().any()
    return [LEGEND, *([f"{PUBLISHED_COLUMN}: {references.RUN_GLUE_SOURCE}"] if shown else [])]


def csv_text(report: CrossEnvReport) -> str:
    """The long table: one line per (cell, environment), numbers unrounded."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CELL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in report.cells.to_dict("records"):
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in cell.items()})
    return out.getvalue()


def _regression_lines(report: CrossEnvReport) -> list[str]:
    found = regressions(report.verdicts)
    return ["", f"{len(found)} regression(s) against {report.reference.short}:",
            *(f"- {v.regression_message()}" for v in found)] if found else []
