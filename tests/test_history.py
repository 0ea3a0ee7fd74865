"""`harness history`: change points on synthetic series (where, how big, how often on noise alone), the night
folders and their file index, series that never mix machines, and the command end to end on synthetic nights
written as real records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.base.jsonfile import SchemaError
from harness.history import series as history_series
from harness.history import synthetic
from harness.judging import changepoints
from harness.store import history, recordsets

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "results" / "smoke-tf5"  # real smoke-tier records (transformers 5.x, an AMD EPYC, one thread)
# night-to-night noise as measured on real reruns (results/history/noise.json has the measured values)
NOISE = synthetic.Noise(step_night=0.03, step_seed=0.02, metric_seed=0.01, metric_night=0.0, memory=0.01)


def noisy(rng: np.random.Generator, nights: int = 60, sd: float = 0.03, heavy: bool = False) -> np.ndarray:
    """Step times around 0.05 s with log-normal night noise (Student t with 3 degrees of freedom when heavy)."""
    draws = rng.standard_t(3, nights) * sd / np.sqrt(3) if heavy else rng.normal(0, sd, nights)
    return 0.05 * np.exp(draws)


# --------------------------------------------------------------------------------------------- change points

@pytest.mark.parametrize(("sd", "exact", "near"), [(0.015, 95, 98), (0.03, 75, 90)])
def test_a_planted_slowdown_is_found_on_its_night_with_its_size(sd: float, exact: int, near: int) -> None:
    """8 % slower from a random night on: found alone, on its night (or one off: `near`), its size inside the
    interval. Location is as sure as the noise allows: at 3 % night noise the step is 2.7 standard deviations."""
    rng = np.random.default_rng(7)
    hits, close, sizes = 0, 0, []
    for _ in range(100):
        values = noisy(rng, sd=sd)
        at = int(rng.integers(10, 51))
        values[at:] *= 1.08
        found = changepoints.changes(list(values), log=True, min_effect=0.03)
        hits += [c.at for c in found] == [at]
        close += len(found) == 1 and abs(found[0].at - at) <= 1
        sizes += [c.size for c in found if c.at == at]
        assert all(c.low <= c.size <= c.high for c in found)
    assert hits >= exact and close >= near, f"alone on its night {hits}, within one night {close}, of 100"
    assert abs(np.median(sizes) - 0.08) < 0.01


@pytest.mark.parametrize(("heavy", "most", "watch"), [(False, 1, 3), (True, 5, 9)], ids=["normal", "heavy-tailed"])
def test_noise_alone_rarely_makes_a_change(heavy: bool, most: int, watch: int) -> None:
    """Noise alone, 3 % a night with a 3 % smallest change: confirmed changes in at most 1 of 300 series (normal
    noise; 5 with Student t tails, where a run of three or four low nights happens). A newest night outside its
    prediction interval is a night to watch, not a change, and does not fail the nightly."""
    rng = np.random.default_rng(11)
    found = [c for _ in range(300) for c in changepoints.changes(list(noisy(rng, heavy=heavy)), log=True,
                                                                 min_effect=0.03)]
    confirmed = [c for c in found if not c.newest]
    assert len(confirmed) <= most and len(found) - len(confirmed) <= watch, \
        f"{len(confirmed)} confirmed changes, {len(found) - len(confirmed)} nights to watch in 300 noise-only series"


def test_a_deterministic_metric_changes_exactly_where_it_moves_and_only_beyond_min_effect() -> None:
    values = [0.85] * 43 + [0.82] * 17
    found = changepoints.changes(values, log=False, min_effect=0.01)
    assert [(c.at, round(c.size, 6)) for c in found] == [(43, -0.03)]
    assert found[0].worse(higher_is_better=True)
    assert changepoints.changes([0.85] * 43 + [0.845] * 17, log=False, min_effect=0.01) == []


def test_the_newest_night_alone_is_judged_against_the_nights_before_it() -> None:
    values = noisy(np.random.default_rng(3), nights=30, sd=0.01)
    values[-1] *= 1.15
    found = changepoints.changes(list(values), log=True, min_effect=0.03)
    assert len(found) == 1 and found[0].newest and found[0].at == 29 and found[0].size > 0.1


def test_a_short_series_is_not_judged() -> None:
    assert changepoints.changes([1.0, 1.0, 2.0, 2.0, 2.0], log=True, min_effect=0.03) == []
    assert changepoints.robust_noise([1.0]) == 0.0


# --------------------------------------------------------------------------------------------- nights and index

def write(root: Path, nights: int, plants: list[synthetic.Plant] = (), seeds: int = 2, cells: int = 2,
          rng: int = 0) -> list[Path]:
    found = synthetic.templates(recordsets.load([TEMPLATES]).records)[:cells]
    return synthetic.write_history(root, found, nights=nights, seeds=seeds, noise=NOISE, plants=plants, rng=rng)


def groups() -> list[str]:
    return [r.group for r in synthetic.templates(recordsets.load([TEMPLATES]).records)]


def test_nights_are_folders_holding_runs_and_bad_paths_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "h", 2)
    assert [n.name for n in history.nights([tmp_path / "h"])] == ["night-01", "night-02"]
    assert [n.name for n in history.nights([tmp_path / "h" / "night-02"])] == ["night-02"]
    with pytest.raises(SchemaError, match="missing does not exist"):
        history.nights([tmp_path / "missing"])
    with pytest.raises(SchemaError, match="is not a folder"):
        history.nights([next((tmp_path / "h").glob("night-01/runs/**/*.json"))])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match="holds no night"):
        history.nights([tmp_path / "empty"])
    with pytest.raises(SchemaError, match="more than once"):
        history.nights([tmp_path / "h", tmp_path / "h" / "night-01"])


def test_the_index_reads_only_new_or_changed_files(tmp_path: Path) -> None:
    write(tmp_path / "h", 3)
    index = tmp_path / "index.sqlite"
    first = history.load(history.nights([tmp_path / "h"]), index=index)
    again = history.load(history.nights([tmp_path / "h"]), index=index)
    assert (first.parsed, again.parsed) == (12, 0)
    assert again.records.equals(first.records)
    changed = sorted((tmp_path / "h" / "night-02").glob("runs/**/*.json"))[0]
    payload = json.loads(changed.read_text())
    payload["status"], payload["error"] = "failed", "out of memory"
    changed.write_text(json.dumps(payload))
    os.utime(changed, ns=(1, 1))  # another size and time: made again
    third = history.load(history.nights([tmp_path / "h"]), index=index)
    assert third.parsed == 1 and (third.records["status"] == "failed").sum() == 1
    plain = history.load(history.nights([tmp_path / "h"]), index=None)
    assert plain.parsed == 12 and plain.records.drop(columns="path").equals(third.records.drop(columns="path"))


def test_series_never_mix_machines(tmp_path: Path) -> None:
    write(tmp_path / "h", 8, cells=1)
    for path in sorted((tmp_path / "h").glob("night-0[5-8]/runs/**/*.json")):
        payload = json.loads(path.read_text())
        payload["env"]["machine_id"] = "another0machine"
        path.write_text(json.dumps(payload))
    loaded = history.load(history.nights([tmp_path / "h"]), index=None)
    step = [s for s in history_series.build(loaded) if s.key.measure == "train_step_s"]
    assert sorted((s.key.machine_id[:7], len(s.points)) for s in step) == [("0035969", 4), ("another", 4)]
    changed = history_series.night_changes(loaded)
    assert changed["night-05"] == ["first night on machine another0machine"]


def test_measured_noise_recovers_the_noise_a_history_was_made_with(tmp_path: Path) -> None:
    made = synthetic.Noise(step_night=0.04, step_seed=0.015, metric_seed=0.02, metric_night=0.0, memory=0.01)
    found = synthetic.templates(recordsets.load([TEMPLATES]).records)
    synthetic.write_history(tmp_path / "h", found, nights=12, seeds=3, noise=made, rng=5)
    measured = synthetic.measure_noise(history.load(history.nights([tmp_path / "h"]), index=None))
    assert measured.metric_night < 1e-12
    for name in ("step_night", "step_seed", "metric_seed", "memory"):
        assert 0.6 < getattr(measured, name) / getattr(made, name) < 1.5, (name, measured)


# --------------------------------------------------------------------------------------------- the command

def test_history_names_each_planted_change_its_night_and_what_changed(tmp_path: Path) -> None:
    slow, drop = groups()[:2]
    plants = [synthetic.Plant(16, slow, "train_step_s", 0.08, {"torch": "2.13.1"}),
              synthetic.Plant(24, drop, "primary", -0.03, {"transformers": "5.26.0"}),
              synthetic.Plant(9, "no cell", "primary", 0.0, {"datasets": "9.9.9"})]
    write(tmp_path / "h", 30, plants)
    code = cli.main(["history", str(tmp_path / "h"), "--output", str(tmp_path / "out"), "--no-index"])
    assert code == 0  # nothing changed on the newest night, and it was judged against the night before
    result = json.loads((tmp_path / "out" / "history.json").read_text())
    found = sorted((c["cell"], c["measure"], c["night"], c["worse"]) for c in result["changes"])
    assert found == sorted([(drop, "primary", "night-24", True), (slow, "mfu", "night-16", True),
                            (slow, "train_step_s", "night-16", True)])
    said = {c["measure"]: c["what_changed"] for c in result["changes"]}
    assert any(s.startswith("torch ") and s.endswith("-> 2.13.1") for s in said["train_step_s"])
    assert said["primary"] == ["transformers 5.24.0 -> 5.26.0"]
    nights = {n["night"]: n["changed since the night before"] for n in result["nights"]}
    assert nights["night-09"] == "datasets 5.2.0 -> 9.9.9" and nights["night-10"] == "nothing"
    assert {v["verdict"] for v in result["since_last_night"] if v["kind"] == "quality"} == {"unchanged"}
    page = (tmp_path / "out" / "history.html").read_text()
    assert page.count('<svg class="plot"') >= 5 and "<script" not in page
    assert "night-16" in (tmp_path / "out" / "history.md").read_text()


def test_a_regression_on_the_newest_night_fails_the_nightly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path / "h", 12, [synthetic.Plant(12, groups()[0], "primary", -0.05, {"transformers": "5.26.0"})])
    code = cli.main(["history", str(tmp_path / "h"), "--no-index"])
    out = capsys.readouterr().out
    assert code == 1 and "regression(s) on the newest night (night-12)" in out and "REGRESSED" in out


def test_one_night_judges_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path / "h", 1)
    assert cli.main(["history", str(tmp_path / "h"), "--no-index"]) == 3
    assert "one night only" in capsys.readouterr().err


def test_the_nightly_fails_on_the_night_a_slowdown_is_confirmed_and_not_after(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    folders = write(tmp_path / "h", 20, [synthetic.Plant(12, groups()[0], "train_step_s", 0.25, {"torch": "2.13.1"})])
    outcomes = {}
    for last in (14, 20):
        code = cli.main(["history", *map(str, folders[:last]), "--no-index"])
        outcomes[last] = (code, "confirmed tonight" in capsys.readouterr().out)
    # night 14 is the third slow night: the change is confirmed then (and the nightly fails); by night 20 it is old
    assert outcomes == {14: (1, True), 20: (0, False)}


def test_a_cell_that_fails_tonight_fails_the_nightly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folders = write(tmp_path / "h", 8, cells=1)
    failing = sorted(folders[-1].glob("runs/**/*.json"))[0]
    payload = json.loads(failing.read_text())
    payload.update(status="failed", error="loss is nan at step 3", metrics={})
    failing.write_text(json.dumps(payload))
    assert cli.main(["history", str(tmp_path / "h"), "--no-index"]) == 1
    assert "1 seed(s) failed tonight, none the night before" in capsys.readouterr().out


def test_a_slowdown_of_the_whole_stack_is_one_all_cells_change_on_its_night(tmp_path: Path) -> None:
    """Step times as noisy as measured on this machine's reruns (11.5 % a run): an 8 % slowdown of every cell is
    found on its night by the machine's all-cells series, and shown once (the cells' own changes taken in); a
    change of one cell alone does not move the all-cells median."""
    measured = synthetic.Noise(step_night=0.0, step_seed=0.115, metric_seed=0.08, metric_night=0.0, memory=0.04)
    cells = synthetic.templates(recordsets.load([TEMPLATES]).records)
    synthetic.write_history(tmp_path / "h", cells, nights=40, seeds=3, noise=measured, rng=2,
                            plants=[synthetic.Plant(21, "*", "train_step_s", 0.08, {"torch": "2.13.1"}),
                                    synthetic.Plant(11, cells[0].group, "primary", -0.05)])
    assert cli.main(["history", str(tmp_path / "h"), "--output", str(tmp_path / "out"), "--no-index"]) == 0
    changes = json.loads((tmp_path / "out" / "history.json").read_text())["changes"]
    step = [(c["cell"], c["night"]) for c in changes if c["measure"] == "train_step_s"]
    assert step == [("all cells", "night-21")], changes
    metric = [(c["cell"], c["night"]) for c in changes if c["measure"] == "primary"]
    assert metric == [(cells[0].group, "night-11")]
