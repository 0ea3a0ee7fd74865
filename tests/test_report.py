"""`harness report`: the HTML building blocks, the table across environments (pandas), and the command."""

from __future__ import annotations

import configparser
import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.core.record import RunRecord
from harness.errors import HarnessError
from harness.core.evidence import Evidence
from harness.judging.verdict import IMPROVED, REGRESSED
from harness.reporting import crossenv, crossenv_html, html
from harness.store.results import write_record

from test_baselines import make_record

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
OLD, NEW = "4.57.6", "5.24.0"


def svg_tree(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # an inline SVG must be well-formed XML


def env_record(version: str, *, seed: int, accuracy: float, torch: str = "2.13.0", lr: float = 1e-3,
               created: str = "2026-01-01T00:00:00+00:00", speed: float = 1000.0) -> dict[str, Any]:
    record = make_record(seed=seed, accuracy=accuracy, lr=lr)
    record["env"].update(env_key=f"tf{version}-torch{torch}", packages={"transformers": version, "torch": torch,
                                                                         "datasets": "5.2.0"})
    record["created_at"] = created
    record["timings"]["train_samples_per_second"] = speed
    record["trajectory"] = [{"step": s, "loss": 0.7 - 0.01 * s, "grad_norm": 1.0, "learning_rate": 1e-3}
                            for s in range(1, 9)]
    return record


def records(*payloads: dict[str, Any]) -> Evidence:
    return Evidence(records=[RunRecord.from_dict(p) for p in payloads])


def old_vs_new(new_accuracy: tuple[float, ...] = (0.6, 0.62, 0.58)) -> Evidence:
    """Three seeds in each of two transformers versions; the new one's accuracy as given."""
    old = [env_record(OLD, seed=s, accuracy=a) for s, a in zip(range(3), (0.9, 0.85, 0.8))]
    new = [env_record(NEW, seed=s, accuracy=a) for s, a in zip(range(3), new_accuracy)]
    return records(*old, *new)


# ------------------------------------------------------------------------------------------------ html.py

@pytest.mark.parametrize(("low", "high"), [(0.31, 0.87), (5.0, 5.0), (-0.001, 0.002), (1.0, 64.0), (0.0, 1e-7),
                                           (-3.0, -2.5), (1234.0, 98765.0)])
def test_ticks_are_round_and_cover_the_range(low: float, high: float) -> None:
    ticks = html.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 2 <= len(ticks) <= 8
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
    step = steps.pop()
    assert not steps or all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5))


def test_ticks_refuse_non_finite_ranges() -> None:
    with pytest.raises(ValueError, match="finite"):
        html.nice_ticks(0.0, math.inf)


def test_table_escapes_cells_and_colours_rows_by_verdict() -> None:
    rows = [{"cell": "<script>x</script>", "verdict": "regressed"}, {"cell": "a & b", "verdict": "not comparable"},
            {"cell": "plain"}]
    markup = html.table(["cell", "verdict"], rows, caption="c<1>",
                        row_class=lambda r: html.verdict_class(str(r.get("verdict", ""))))
    assert "<script>" not in markup and "&lt;script&gt;x&lt;/script&gt;" in markup and "a &amp; b" in markup
    assert "<caption>c&lt;1&gt;</caption>" in markup
    assert re.findall(r'<tr class="([^"]+)">', markup) == ["regressed", "not-comparable"]
    assert markup.count("<tr>") == 2  # the header row and the row without a verdict
    css = html.page("t", [])
    assert all(f"tr.{c} td" in css for c in html.ROW_CLASSES)


def test_page_is_self_contained() -> None:
    markup = html.page("A <title>", [html.section("S & T", html.paragraph("1 < 2")),
                                     html.line_plot({"a": [(0, 1), (1, 2)]}, title="t", x_label="x", y_label="y")],
                       subtitle="sub")
    assert markup.startswith("<!DOCTYPE html>") and "<title>A &lt;title&gt;</title>" in markup
    assert "<h2>S &amp; T</h2>" in markup and "<p>1 &lt; 2</p>" in markup
    for outside in ("<script", "<link", "@import", "url(", "src=", "https://"):
        assert outside not in markup
    assert re.findall(r"http://[^\"' ]+", markup) == ["http://www.w3.org/2000/svg"]  # a namespace, never fetched


def test_line_plot_draws_one_polyline_and_legend_entry_per_series() -> None:
    series = {"tf 4.57.6": [(1, 0.7), (2, 0.6), (3, math.nan), (4, 0.5)], "tf <5>": [(1, 0.71), (4, 0.52)],
              "empty": []}
    svg = svg_tree(html.line_plot(series, title="loss", x_label="optimizer step", y_label="loss"))
    assert svg.get("class") == "plot"
    lines = svg.findall(f".//{SVG}polyline")
    assert [len(p.get("points", "").split()) for p in lines] == [3, 2, 0]  # the NaN point left out
    legend = [t.text for t in svg.findall(f".//{SVG}g[@class='legend-item']/{SVG}text")]
    assert legend == ["tf 4.57.6", "tf <5>", "empty"]
    long = svg_tree(html.line_plot({"x" * 300: [(0, 1)]}, title="t" * 300, x_label="", y_label=""))
    shown = [t.text or "" for t in long.iter(f"{SVG}text") if (t.text or "").startswith(("x", "t"))]
    assert all(len(t) < 100 and t.endswith("…") for t in shown) and len(shown) == 2  # cut to the plot's width
    assert long.findtext(f"{SVG}title") == "t" * 300  # in full as the tooltip
    labels = {t.text for t in svg.iter(f"{SVG}text")}
    assert {"loss", "optimizer step"} <= labels and len(labels) > 8  # title, axis labels and tick labels
    # the lower loss is drawn higher up the page only if the y axis is upside down: it must not be
    (x1, y1), (x2, y2) = (tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()[:2])
    assert x2 > x1 and y2 > y1


def test_empty_plots_say_so() -> None:
    assert "no data to plot" in html.line_plot({"a": [(1, math.inf)]}, title="t", x_label="x", y_label="y")
    assert "no data to plot" in html.point_plot({}, title="t", y_label="y", categories=["a"])


def test_point_plot_error_bars_span_the_spread_in_category_order() -> None:
    series = {"tiny-bert": [("tf 5.24.0", 0.8, 0.05), ("tf 4.57.6", 0.9, 0.0)]}
    svg = svg_tree(html.point_plot(series, title="accuracy", y_label="accuracy", categories=["tf 4.57.6",
                                                                                           "tf 5.24.0"]))
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.text in ("tf 4.57.6", "tf 5.24.0")]
    assert ticks == ["tf 4.57.6", "tf 5.24.0"]
    dots = svg.findall(f".//{SVG}circle")
    (x_new, y_new), (x_old, y_old) = ((float(c.get("cx", "")), float(c.get("cy", ""))) for c in dots)
    assert x_old < x_new and y_old < y_new  # 0.9 sits higher (smaller y) than 0.8
    bar = next(line for line in svg.findall(f".//{SVG}g[@class='series']/{SVG}line")
               if line.get("x1") == line.get("x2") and float(line.get("x1", "")) == x_new)
    top, bottom = float(bar.get("y1", "")), float(bar.get("y2", ""))
    assert math.isclose((bottom - y_new), (y_new - top), abs_tol=0.2) and bottom - top > 10


# ------------------------------------------------------------------------------------------------ crossenv.py

def test_table_values_are_seed_mean_and_spread_with_judged_deltas() -> None:
    report = crossenv.build(old_vs_new())
    assert [e.short for e in report.environments] == [f"tf {OLD}", f"tf {NEW}"] and report.reference.transformers == OLD
    cells = report.cells.set_index("transformers")
    assert cells.loc[OLD, "mean"] == pytest.approx(0.85) and cells.loc[OLD, "std"] == pytest.approx(0.05)
    assert cells.loc[NEW, "delta"] == pytest.approx(0.6 - 0.85)
    assert cells.loc[NEW, "quality_verdict"] == REGRESSED and cells.loc[OLD, "quality_verdict"] == ""
    assert cells.loc[NEW, "samples_per_second"] == 1000.0 and cells.loc[NEW, "throughput_delta"] == 0.0
    shown = crossenv.markdown(report)
    assert f"| syn-sst2-tiny-bert | accuracy | 0.85 ± 0.05 (n=3) | 0.6 ± 0.02 (n=3)  Δ -0.2500 ▼ |" in shown
    assert "1 regression(s) against tf 4.57.6" in shown and f"[tf {NEW}] accuracy" in shown
    assert crossenv.worst_verdicts(report) == {"syn-sst2-tiny-bert": REGRESSED}


def test_reference_can_be_named_and_unknown_names_are_refused() -> None:
    report = crossenv.build(old_vs_new(), reference=NEW)
    cells = report.cells.set_index("transformers")
    assert report.reference.transformers == NEW
    assert cells.loc[OLD, "quality_verdict"] == IMPROVED and cells.loc[OLD, "delta"] == pytest.approx(0.25)
    with pytest.raises(HarnessError, match=r"--reference '4\.99' matches none .* Allowed: .*4\.57\.6 \(tf4\.57\.6"):
        crossenv.build(old_vs_new(), reference="4.99")


def test_environments_sort_by_version_and_headers_name_what_differs() -> None:
    evidence = records(env_record("4.100.0", seed=0, accuracy=0.9), env_record("4.46.3", seed=0, accuracy=0.9),
                       env_record("4.46.3", seed=0, accuracy=0.9, torch="2.5.1"))
    envs = crossenv.environments(evidence.records)
    assert [e.short for e in envs] == ["tf 4.46.3 · torch 2.5.1", "tf 4.46.3 · torch 2.13.0",
                                       "tf 4.100.0 · torch 2.13.0"]
    assert envs[0].label == "transformers 4.46.3, torch 2.5.1, datasets 5.2.0"


def test_a_cell_run_with_other_settings_is_its_own_row_judged_against_the_same_settings() -> None:
    evidence = records(env_record(OLD, seed=0, accuracy=0.9), env_record(NEW, seed=0, accuracy=0.9),
                       env_record(OLD, seed=0, accuracy=0.7, lr=5e-4), env_record(NEW, seed=0, accuracy=0.7, lr=5e-4))
    report = crossenv.build(evidence)
    assert report.rows == ["syn-sst2-tiny-bert [learning_rate=0.0005]", "syn-sst2-tiny-bert [learning_rate=0.001]"]
    assert set(report.cells["quality_verdict"]) == {"", "unchanged"}  # each against its own settings: no change
    assert {v.cell for v in report.verdicts if v.kind == "quality"} == set(report.rows)


def test_newest_record_per_seed_wins_and_failed_runs_are_counted() -> None:
    stale = env_record(OLD, seed=0, accuracy=0.5)
    fresh = env_record(OLD, seed=0, accuracy=0.9, created="2026-02-01T00:00:00+00:00")
    failed = {**env_record(OLD, seed=1, accuracy=0.9), "status": "failed", "error": "loss diverged", "metrics": {}}
    cell = crossenv.build(records(stale, fresh, failed)).cells.iloc[0]
    assert (cell["seeds"], cell["failed"], cell["mean"]) == (2, 1, pytest.approx(0.9))
    assert crossenv.metric_text(cell.to_dict()) == "0.9 (n=1), 1 failed"


def test_csv_is_one_line_per_cell_and_environment() -> None:
    lines = crossenv.csv_text(crossenv.build(old_vs_new())).splitlines()
    assert lines[0].split(",") == list(crossenv.CELL_COLUMNS) and len(lines) == 3
    new = dict(zip(crossenv.CELL_COLUMNS, lines[2].split(",")))
    assert (new["transformers"], new["quality_verdict"], new["reference"]) == (NEW, REGRESSED, "False")


def test_html_report_holds_table_verdicts_and_every_plot() -> None:
    report = crossenv.build(old_vs_new())
    page = crossenv_html.page(report)
    assert '<tr class="regressed"><td>syn-sst2-tiny-bert</td>' in page
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    titles = [svg_tree(s).findtext(f"{SVG}title") for s in svgs]
    assert [t.split(":")[0].split(",")[0] for t in titles] == [
        "syn-sst2", "syn-sst2", "syn-sst2-tiny-bert", "training loss", "grad norm", "learning rate"]
    assert all(svg_tree(s).findall(f".//{SVG}polyline") or svg_tree(s).findall(f".//{SVG}circle") for s in svgs)


def test_no_records_is_one_actionable_error() -> None:
    with pytest.raises(HarnessError, match="hold no run record .* `harness run --output DIR`"):
        crossenv.build(Evidence())


# ------------------------------------------------------------------------------------------------ the command

def write(folder: Path, *payloads: dict[str, Any]) -> Path:
    for payload in payloads:
        write_record(copy.deepcopy(payload), folder)
    return folder


def test_report_over_record_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evidence = old_vs_new()
    old = write(tmp_path / "old", *(r.to_dict() for r in evidence.records[:3]))
    new = write(tmp_path / "new", *(r.to_dict() for r in evidence.records[3:]))
    assert cli.main(["report", str(old), str(new)]) == 1  # the new version regressed
    out = capsys.readouterr().out
    assert "2 environment(s); reference: tf 4.57.6" in out and "▼" in out
    assert cli.main(["report", str(old), str(new), "--reference", NEW, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("row,task,model,settings,environment")
    target = tmp_path / "deep" / "report.html"
    assert cli.main(["report", str(tmp_path), "--format", "html", "--output", str(target.parent)]) == 1
    assert capsys.readouterr().out.strip() == f"report: {target}"
    assert target.read_text().count('<svg class="plot"') == 6


def test_report_still_renders_a_verdicts_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evidence = old_vs_new()
    write(tmp_path / "a", *(r.to_dict() for r in evidence.records[:3]))
    write(tmp_path / "b", *(r.to_dict() for r in evidence.records[3:]))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "v")]) == 1
    capsys.readouterr()
    verdicts = tmp_path / "v" / "verdicts.json"
    assert cli.main(["report", str(verdicts), "--format", "markdown"]) == 1
    assert "**REGRESSED**" in capsys.readouterr().out
    assert cli.main(["report", str(verdicts), "--format", "html", "--output", str(tmp_path / "v")]) == 1
    assert '<tr class="regressed">' in (tmp_path / "v" / "report.html").read_text()


@pytest.mark.parametrize(("extra", "expected"), [
    (["{verdicts}", "{records}"], "is a verdicts file, which is rendered on its own"),
    (["{verdicts}", "--reference", "4.57.6"], "a verdicts file is already judged. Drop --reference"),
    (["{records}", "--reference", "3.0"], "--reference '3.0' matches none of the records' environments"),
    (["{empty}"], "hold no run record"),
    (["{records}", "--output", "{file}/x"], "--output"),
    (["{nowhere}/runs"], "runs does not exist; pass run record files or folders"),
])
def test_bad_report_inputs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                        expected: str) -> None:
    write(tmp_path / "records", env_record(OLD, seed=0, accuracy=0.9))
    (tmp_path / "verdicts.json").write_text(json.dumps({"schema_version": 1, "verdicts": []}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    names = {"verdicts": tmp_path / "verdicts.json", "records": tmp_path / "records", "empty": tmp_path / "empty",
             "file": tmp_path / "file", "nowhere": tmp_path / "nowhere"}
    assert cli.main(["report", *(e.format(**names) for e in extra)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_tox_matrix_pins_each_line_and_reports_over_all_of_them() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    section = next(s for s in ini.sections() if s.startswith("testenv:smoke-tf{"))
    lines = ["tf" + v for v in section.split("{")[1].rstrip("}").split(",")]  # smoke-tf{446,...}: factor tf446
    assert len(lines) >= 3
    for line in lines:  # each line pins its transformers, and the pins hold while the project installs
        assert re.search(rf"^\s*{line}: transformers==\d+\.\d+\.\d+$", ini[section]["deps"], flags=re.M)
    assert ini["testenv"]["constrain_package_deps"] == "true"
    assert "tox-uv" in ini["tox"]["requires"] and "UV_FIND_LINKS" in ini["testenv"]["setenv"]
    report = ini["testenv:report"]["commands"]
    assert all(report.count(f"results/smoke-{line} ") == 3 for line in lines)  # every format, every line


def test_the_table_shows_the_published_result_mfu_and_peak_memory() -> None:
    """bert-base-cased on MRPC gets run_glue's published accuracy as an external column (fp16 runs the fp16 figure);
    each environment's speed carries the records' MFU and peak memory (CUDA's where the run had one)."""
    def bert(version: str, seed: int, precision: str) -> dict[str, Any]:
        record = env_record(version, seed=seed, accuracy=0.8)
        record["config"].update(model="google-bert/bert-base-cased", task="mrpc", precision=precision)
        record["task"]["name"], record["cell"] = "mrpc", f"mrpc-bert-base-cased-s{seed}"
        record["timings"].update(model_flops={"mfu": 0.25 + 0.01 * seed}, peak_rss_bytes=2**31,
                                 cuda_max_allocated_bytes=3 * 2**29 if precision == "fp16" else None)
        return record

    report = crossenv.build(records(*(bert(v, s, p) for v in (OLD, NEW) for s in (0, 1) for p in ("fp32", "fp16"))))
    columns, rows = crossenv.wide_rows(report)
    assert columns[2] == crossenv.PUBLISHED_COLUMN
    shown = {row["cell"]: row for row in rows}
    assert shown["mrpc-bert-base-cased"][crossenv.PUBLISHED_COLUMN] == "0.8407"
    assert shown["mrpc-bert-base-cased-fp16"][crossenv.PUBLISHED_COLUMN] == "0.8358"
    speed = shown["mrpc-bert-base-cased"][f"{report.environments[0].short} samples/s"]
    assert "MFU 25.5%" in speed and "2.00 GiB" in speed
    assert "1.50 GiB" in shown["mrpc-bert-base-cased-fp16"][f"{report.environments[0].short} samples/s"]
    assert "run_glue.py" in crossenv.markdown(report)
    plain = crossenv.build(old_vs_new())  # no published result for these cells: no column, no source line
    assert crossenv.PUBLISHED_COLUMN not in crossenv.wide_rows(plain)[0]
    assert "run_glue.py" not in crossenv.markdown(plain)
