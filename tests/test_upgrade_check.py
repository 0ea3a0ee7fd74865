"""`harness upgrade-check`: its pure parts on synthetic inputs, then the whole command with both sides in this very
environment (no venv to build), once as is and once with faults patched into the new side only."""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.record import RunRecord
from harness.errors import HarnessError
from harness.upgrade import abtest, api, check, processes, report, sides, trajectory
from harness.upgrade.replay import SuiteOutcome

REPO = Path(__file__).resolve().parent.parent
FAULTS = REPO / "tests" / "upgrade_faults.py"
THIS_VENV = str(Path(sys.executable).parent.parent)


# ------------------------------------------------------------------------------------------------ sides

def test_a_side_is_requirements_a_requirements_file_or_a_venv(tmp_path: Path) -> None:
    assert sides.parse("to", ["transformers==5.24.0", "datasets>=4"]).requirements == ("transformers==5.24.0",
                                                                                        "datasets>=4")
    listed = tmp_path / "requirements.txt"
    listed.write_text("# pins\ntransformers==4.57.6  # the old line\n-e .\nharness\n\naccelerate==1.15.0\n")
    assert sides.parse("from", [str(listed)]).requirements == ("transformers==4.57.6", "accelerate==1.15.0")
    venv = sides.parse("from", [THIS_VENV])
    assert venv.venv == Path(THIS_VENV).resolve() and venv.label == str(Path(THIS_VENV).resolve())


@pytest.mark.parametrize("given, patch, expected", [
    ([], None, "--to is required"),
    (["transformers=>5"], None, "is not a pip requirement"),
    (["."], None, "not a virtualenv"),
    (["transformers==5.24.0"], "no_colon", "expected MODULE:FUNC"),
])
def test_bad_sides_are_refused_with_what_is_allowed(given: list, patch: str | None, expected: str) -> None:
    with pytest.raises(HarnessError, match=expected) as caught:
        sides.parse("to", given, patch=patch)
    assert "requirement" in str(caught.value) or "MODULE:FUNC" in str(caught.value)


def test_a_wheel_or_sdist_built_here_and_a_vcs_requirement_are_sides(tmp_path: Path) -> None:
    """The nightly canary's side: transformers' main branch as a VCS requirement or a wheel built from it."""
    from harness.upgrade import venvs

    wheel = tmp_path / "transformers-5.26.0.dev0-py3-none-any.whl"
    wheel.write_bytes(b"one build")
    spec = sides.parse("to", [str(wheel)])
    assert spec.requirements == (f"transformers @ {wheel.resolve().as_uri()}",)
    sdist = tmp_path / "my_pkg-1.0.tar.gz"
    sdist.write_bytes(b"sdist")
    assert sides.parse("to", [str(sdist), "tokenizers==0.23.3"]).requirements == (
        f"my-pkg @ {sdist.resolve().as_uri()}", "tokenizers==0.23.3")
    vcs = "transformers @ git+https://github.com/huggingface/transformers@main"
    assert sides.parse("to", [vcs]).requirements == (vcs,)
    with pytest.raises(HarnessError, match="needs the package's name first"):
        sides.parse("to", ["git+https://github.com/huggingface/transformers@main"])
    before = venvs.key(spec.requirements)
    wheel.write_bytes(b"rebuilt under the same name")
    assert venvs.key(spec.requirements) != before  # a rebuilt wheel is another environment
    assert venvs._name(spec.requirements[0]) == "transformers" and venvs._name("--find-links /x") == ""


def test_an_empty_requirements_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "requirements.txt"
    empty.write_text("# nothing pinned\n-e .\n")
    with pytest.raises(HarnessError, match="names no package requirement"):
        sides.parse("to", [str(empty)])


def test_a_venv_side_reads_its_versions_and_runs_this_checkout(tmp_path: Path) -> None:
    import transformers

    side = sides.prepare(sides.parse("to", [THIS_VENV]), tmp_path)
    assert side.transformers == transformers.__version__.split("+")[0]
    assert side.environ()["PYTHONPATH"].split(":")[0] == str(REPO)


# ------------------------------------------------------------------------------------------------ API

OLD_SIGNATURES = {
    "TrainingArguments.__init__": [{"name": "output_dir", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"},
                                   {"name": "evaluation_strategy", "kind": "POSITIONAL_OR_KEYWORD",
                                    "default": "'no'"},
                                   {"name": "report_to", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"}],
    "Trainer.__init__": [{"name": "model", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"},
                         {"name": "tokenizer", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"}],
}
NEW_SIGNATURES = {
    "TrainingArguments.__init__": [{"name": "output_dir", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"},
                                   {"name": "report_to", "kind": "POSITIONAL_OR_KEYWORD", "default": "'none'"},
                                   {"name": "seed_mode", "kind": "KEYWORD_ONLY", "default": None}],
    "Trainer.__init__": [{"name": "model", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"},
                         {"name": "args", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"},
                         {"name": "processing_class", "kind": "POSITIONAL_OR_KEYWORD", "default": "None"}],
}


def test_signature_diff_names_removed_added_and_changed_defaults() -> None:
    changes = {(c.target, c.parameter, c.change): c for c in api.diff(OLD_SIGNATURES, NEW_SIGNATURES)}
    assert set(changes) == {("TrainingArguments.__init__", "evaluation_strategy", "removed"),
                            ("TrainingArguments.__init__", "report_to", "default"),
                            ("TrainingArguments.__init__", "seed_mode", "added"),
                            ("Trainer.__init__", "tokenizer", "removed"),
                            ("Trainer.__init__", "processing_class", "added"),
                            ("Trainer.__init__", "args", "added")}
    assert changes[("TrainingArguments.__init__", "seed_mode", "added")].breaking  # required: old code breaks
    assert not changes[("Trainer.__init__", "processing_class", "added")].breaking
    rows = api.grouped(list(changes.values()))
    assert rows[0][0].endswith("(breaking)")
    assert ("changed", "TrainingArguments", "TrainingArguments(report_to) default None -> 'none'") in rows


def test_script_check_finds_the_keywords_the_new_version_refuses(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from transformers import Trainer, TrainingArguments\n"
                      "args = TrainingArguments('out', evaluation_strategy='epoch', report_to='none')\n"
                      "trainer = Trainer(model=None, args=args,\n"
                      "                  tokenizer=None)\n"
                      "print(dict(evaluation_strategy=1))  # not a call to the API\n")
    found = api.script_uses(script, NEW_SIGNATURES)
    assert [(u.line, u.call, u.keyword) for u in found] == [(2, "TrainingArguments", "evaluation_strategy"),
                                                           (4, "Trainer", "tokenizer")]
    assert found[0].describe().endswith("train.py:2 TrainingArguments(evaluation_strategy=...)")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(HarnessError, match="not valid Python"):
        api.script_uses(broken, NEW_SIGNATURES)


def test_deprecations_are_matched_across_sides_without_paths_and_numbers() -> None:
    old = [{"category": "FutureWarning", "message": "`tokenizer` is deprecated and will be removed in version 5.0.0",
            "origin": "a.py:1"},
           {"category": "logger.warning", "message": "loaded /tmp/x/checkpoint in 3.2 s", "origin": "b.py:2"}]
    new = [{"category": "FutureWarning", "message": "`foo` will be removed in v6", "origin": "c.py:3"}]
    changes = api.warning_changes(old, new)
    assert [w["origin"] for w in changes["gone"]] == ["a.py:1"]
    assert [w["origin"] for w in changes["new"]] == ["c.py:3"]
    assert api.warning_changes(old, old)["both"] and not api.warning_changes(old, old)["new"]


# ------------------------------------------------------------------------------------------------ trajectories

def _record(cell: str, steps: list[tuple[float, float, float]]) -> RunRecord:
    return RunRecord(schema_version=2, run_id=cell, cell=cell, created_at="t", status="ok", error=None,
                     config={"seed": 0}, task={}, env={}, data={}, model={},
                     trajectory=[{"step": i + 1, "loss": loss, "grad_norm": g, "learning_rate": lr}
                                 for i, (loss, g, lr) in enumerate(steps)])


BASE = [(0.69 * math.exp(-0.013 * i) + 1e-9 * math.pi, 0.3 + 0.0171 * math.sqrt(i + 1), 1.3e-4 * math.e * i)
        for i in range(10)]  # values on no decimal grid, like a Trainer that logs at full precision


def test_identical_trajectories_are_bit_identical_and_float_noise_is_within_tolerance() -> None:
    same = trajectory.parity([_record("c", BASE)], [_record("c", BASE)])[0]
    assert same.status == trajectory.IDENTICAL and same.steps == 10
    ulps = [(loss * (1 + 8 * trajectory.FLOAT32_EPS), g, lr) for loss, g, lr in BASE]
    noisy = trajectory.parity([_record("c", BASE)], [_record("c", ulps)])[0]
    assert noisy.status == trajectory.WITHIN_NOISE and 0 < noisy.largest < trajectory.FLOAT_FLOOR


def test_the_first_step_beyond_tolerance_is_named_with_its_values() -> None:
    changed = [(loss, g, lr * (0.5 if i >= 3 else 1)) for i, (loss, g, lr) in enumerate(BASE)]
    result = trajectory.parity([_record("c", BASE)], [_record("c", changed)])[0]
    assert result.status == trajectory.DIFFERS
    assert (result.first.step, result.first.quantity) == (4, "learning_rate")
    assert result.first.relative == pytest.approx(0.5)
    assert f"learning_rate differs from step 4: {BASE[3][2]:.6g} -> {BASE[3][2] / 2:.6g}" in result.describe()


def test_noise_between_two_runs_in_one_environment_widens_the_tolerance() -> None:
    jitter = [(loss * (1 + 1e-4), g, lr) for loss, g, lr in BASE]
    assert trajectory.tolerance([(_record("c", BASE), _record("c", jitter))]) == pytest.approx(4e-4, rel=0.01)
    shifted = [(loss * (1 + 2e-4), g, lr) for loss, g, lr in BASE]
    result = trajectory.parity([_record("c", BASE)], [_record("c", shifted)],
                               replicates=[(_record("c", BASE), _record("c", jitter))])[0]
    assert result.status == trajectory.WITHIN_NOISE
    missing = trajectory.parity([_record("a", BASE)], [_record("b", BASE)])
    assert [p.status for p in missing] == [trajectory.MISSING] * 2


# ------------------------------------------------------------------------------------------------ contracts

def test_contract_outcomes_newly_failing_regress_and_fixed_ones_are_changes() -> None:
    old = [SuiteOutcome("test_a", "x", "passed"), SuiteOutcome("test_b", "y", "failed", "boom"),
           SuiteOutcome("test_c", "", "xfailed")]
    new = [SuiteOutcome("test_a", "x", "failed", "shape changed"), SuiteOutcome("test_b", "y", "passed"),
           SuiteOutcome("test_c", "", "xfailed")]
    section = check.contracts_section(old, new)
    assert section.status == check.REGRESSED
    assert [(r["test"], r["old"], r["new"]) for r in section.rows] == [("test_a[x]", "passed", "failed"),
                                                                       ("test_b[y]", "failed", "passed")]
    assert section.summary.startswith("1 test(s) newly failing, 1 fixed")
    assert check.contracts_section(old[2:], new[2:]).status == check.OK


# ------------------------------------------------------------------------------------------------ throughput

def test_rounds_alternate_which_side_goes_first() -> None:
    firsts = [abtest.order(r)[0] for r in range(8)]
    assert firsts.count(0) == firsts.count(1) == 4


def _pair(rng: random.Random, *, slowdown: float, rounds: int = 10, steps: int = 15
          ) -> tuple[abtest.Samples, abtest.Samples]:
    """Per-step seconds of both sides: per round a machine speed both sides of the pair share (sd 5 %), a speed of
    each side's own round (sd 1 %), and per-step noise (sd 5 %)."""
    old, new = abtest.Samples(), abtest.Samples()
    for _ in range(rounds):
        shared = rng.gauss(0, 0.05)
        for samples, factor in ((old, 1.0), (new, 1 + slowdown)):
            own = shared + rng.gauss(0, 0.01)
            samples.rounds.append([0.02 * factor * math.exp(own + rng.gauss(0, 0.05)) for _ in range(steps)])
    return old, new


def test_detectable_slowdown_holds_on_synthetic_rounds() -> None:
    """At the slowdown the check says it could detect, it flags in about 80 % of runs; with none, in none."""
    rng = random.Random(7)
    opts = check.CheckOptions(alpha=0.01, min_slowdown=0.05)
    found = [abtest.paired_test(*_pair(rng, slowdown=0), alpha=0.01, min_effect=0.05) for _ in range(100)]
    detectable = statistics.median(p.detectable for p in found)
    assert 0.05 < detectable < 0.15
    flagged = {}
    for slowdown in (0.0, detectable):
        sections = [check.throughput_section(["c"], [_pair(rng, slowdown=slowdown)], opts) for _ in range(100)]
        flagged[slowdown] = sum(s.status == check.REGRESSED for s in sections)
    assert flagged[0.0] <= 2
    assert flagged[detectable] >= 65



def _machine(rng: random.Random, slowdown: float, steps: int = 15) -> list[abtest.Timer]:
    """Two sides timed in turn on one synthetic machine: its speed changes between round pairs (sd 5 %), each
    side's round adds its own (sd 1 %) and each step its own noise (sd 5 %); the new side is `slowdown` slower."""
    state = {"calls": 0, "speed": 0.0}

    def timer(factor: float) -> abtest.Timer:
        def one_round(cell: int) -> dict:
            if state["calls"] % 2 == 0:
                state["speed"] = rng.gauss(0, 0.05)
            state["calls"] += 1
            own = state["speed"] + rng.gauss(0, 0.01)
            return {"step_seconds": [0.02 * factor * math.exp(own + rng.gauss(0, 0.05)) for _ in range(steps)]}
        return one_round

    return [timer(1.0), timer(1.0 + slowdown)]


def test_sequential_rounds_keep_the_power_and_stop_early_without_a_change() -> None:
    """Stopping each cell once its answer is clear: a 10 % slowdown is still flagged (>= 9 in 10), no slowdown
    almost never (<= 2 in 60), and some runs without a change stop before the most rounds allowed."""
    rng = random.Random(11)
    opts = check.CheckOptions(alpha=0.01, min_slowdown=0.05, rounds=10)
    flagged, rounds = {}, {}
    for slowdown in (0.0, 0.10):
        results = [abtest.interleaved(_machine(rng, slowdown), 1, rounds=10, alpha=0.01, min_effect=0.05)
                   for _ in range(60)]
        flagged[slowdown] = sum(check.throughput_section(["c"], samples, opts).status == check.REGRESSED
                                for samples in results)
        rounds[slowdown] = statistics.mean(len(samples[0][0].rounds) for samples in results)
    assert flagged[0.0] <= 2 and flagged[0.10] >= 54
    assert rounds[0.0] < 10  # some runs without a change settle early (9.8 of 10 rounds on average here)
    assert rounds[0.10] <= 10


def test_a_cell_settled_early_without_a_change_passes_and_says_why() -> None:
    rng = random.Random(5)
    samples = abtest.interleaved(_machine(rng, 0.0, steps=200), 1, rounds=10, alpha=0.01, min_effect=0.05)
    old, _ = samples[0]
    assert len(old.rounds) < abtest.min_rounds(0.01) and old.stopped.startswith("no change")
    section = check.throughput_section(["c"], samples, check.CheckOptions(alpha=0.01, min_slowdown=0.05))
    assert section.status == check.OK and "settled before the most rounds" in " ".join(section.notes)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.001])
def test_min_rounds_is_the_fewest_with_which_the_paired_test_can_reject(alpha: float) -> None:
    """Every round slower (the strongest evidence rounds can give): the exact test rejects with min_rounds, and
    cannot with one round fewer."""
    from scipy import stats

    n = abtest.min_rounds(alpha)
    assert stats.wilcoxon([0.1 * (i + 1) for i in range(n)], method="exact").pvalue < alpha
    assert stats.wilcoxon([0.1 * (i + 1) for i in range(n - 1)], method="exact").pvalue >= alpha


def test_too_few_rounds_cannot_tell_and_never_pass() -> None:
    rng = random.Random(3)
    opts = check.CheckOptions(alpha=0.01, min_slowdown=0.05, rounds=2)
    section = check.throughput_section(["c"], [_pair(rng, slowdown=0.6, rounds=2)], opts)
    assert section.status == check.ERROR and section.rows[0]["verdict"] == "cannot tell"
    assert "needs 8" in section.summary


def test_too_few_rounds_are_refused_before_any_venv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["upgrade-check", "--from", "transformers==4.57.6", "--to", "transformers==5.24.0", "--rounds", "1",
                 "--output", str(tmp_path / "x")])
    assert code == 2 and "--rounds 8 or more" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as refused:  # argparse: a fraction, not 500 %
        main(["upgrade-check", "--from", "a==1", "--to", "a==2", "--min-slowdown", "5"])
    assert refused.value.code == 2


# ------------------------------------------------------------------------------------------------ report

def _report() -> check.Report:
    sides_ = [{"name": n, "spec": s, "title": f"transformers {v}", "versions": {"transformers": v}, "patch": None,
               "venv": "/v", "known_defects": [{"id": "d1", "versions": ">=5.0", "link": "https://x/1",
                                                "summary": "s"}] if n == "to" else []}
              for n, s, v in (("from", "transformers==4.57.6", "4.57.6"), ("to", "transformers==5.24.0", "5.24.0"))]
    sections = [check.Section("preflight", "Preflight", check.CHANGED, "2 API change(s)", ("what", "where", "change"),
                              [{"what": "removed (breaking)", "where": "Trainer", "change": "tokenizer | x"}]),
                check.Section("trajectory", "Trajectory", check.CHANGED, "1 of 1 cell(s) differ",
                              ("cell", "parity"), [{"cell": "c", "parity": "differs"}],
                              plots={"c": {"old": [[1, 0.7], [2, 0.6]], "new": [[1, 0.7], [2, 0.65]]}}),
                check.Section("quality", "Quality", check.REGRESSED, "1 regressed", ("cell", "verdict"),
                              [{"cell": "c", "verdict": "REGRESSED"}],
                              plots={"metric": {"old": {"c": 0.9}, "new": {"c": 0.7}}}),
                check.Section("throughput", "Throughput", check.OK, "no slowdown", ("cell",), [{"cell": "c"}],
                              plots={"c": {"old": [0.02, 0.021], "new": [0.02, 0.022]}})]
    return check.Report(sides=sides_, options={"tier": "smoke"}, sections=sections, started="now", seconds=12.0)


def test_report_renders_markdown_html_and_json(tmp_path: Path) -> None:
    result = _report()
    text = report.markdown(result)
    assert text.startswith("## Upgrade check: transformers 4.57.6 → transformers 5.24.0: REGRESSED (quality)")
    assert "| quality | **REGRESSED** | 1 regressed | 0 |" in text
    assert "tokenizer \\| x" in text  # a pipe in a cell does not break the table
    assert "[d1](https://x/1)" in text
    paths = report.write(result, tmp_path)
    page = paths["html"].read_text()
    assert page.count("<svg") == 3  # trajectory, quality, throughput
    assert not any(tag in page for tag in ("<script", "<link", "src=", "@import"))  # opens offline
    again = report.from_json(json.loads(paths["json"].read_text()))
    assert report.markdown(again) == text
    assert report.exit_status(result) == 1
    result.sections[2].status = check.ERROR
    assert report.exit_status(result) == 3 and "COULD NOT TELL (quality)" in report.headline(result)
    result.sections[2].status = check.OK
    assert report.exit_status(result) == 0


# ------------------------------------------------------------------------------------------------ end to end

def _check(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "check"
    code = main(["upgrade-check", "--from", THIS_VENV, "--to", THIS_VENV, "--models", "tiny-bert", "--tasks",
                 "syn-sst2", "--rounds", "8", "--steps", "15", "--output", str(out), *extra])
    return code, json.loads((out / "upgrade-check.json").read_text())


def test_identical_sides_report_no_regression(tmp_path: Path) -> None:
    code, result = _check(tmp_path, "--stages", "trajectory,quality,throughput")
    statuses = {s["stage"]: s["status"] for s in result["sections"]}
    assert code == 0, result
    assert statuses == {"trajectory": "ok", "quality": "ok", "throughput": "ok"}
    parity = result["sections"][0]["rows"][0]["parity"]
    assert parity == trajectory.IDENTICAL  # same code, same seed, one thread: bit for bit
    assert (tmp_path / "check" / "upgrade-check.html").read_text().count("<svg") >= 3


def test_faults_in_the_new_side_are_named_in_their_sections(tmp_path: Path) -> None:
    code, result = _check(tmp_path, "--stages", "trajectory,quality,throughput", "--patch-to",
                          f"{FAULTS}:candidate_faults")
    sections = {s["stage"]: s for s in result["sections"]}
    assert code == 1
    first = sections["trajectory"]["rows"][0]
    assert first["parity"] == trajectory.DIFFERS and "learning_rate differs from step 2" in first["detail"]
    assert sections["quality"]["status"] == check.REGRESSED
    assert any(r["verdict"] == "REGRESSED" and r["kind"] == "quality" for r in sections["quality"]["rows"])
    assert sections["throughput"]["status"] == check.REGRESSED
    assert "Upgrade check" in (tmp_path / "check" / "upgrade-check.md").read_text()


def test_preflight_names_a_broken_walkthrough_and_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from transformers import TrainingArguments\n"
                      "TrainingArguments('out', evaluation_strategy='epoch')\n")
    code, result = _check(tmp_path, "--stages", "preflight", "--script", str(script), "--patch-to",
                          f"{FAULTS}:refuse_eval_strategy")
    section = result["sections"][0]
    assert code == 1 and section["status"] == check.REGRESSED
    assert "the course walkthrough no longer runs" in section["summary"]
    assert any(r["what"] == "your script breaks" and "evaluation_strategy" in r["change"] for r in section["rows"])
    # the script's settings are your fine-tuning, which the faulty new side cannot build: the upgrade breaks it
    assert any(r["what"] == "your fine-tuning FAILS on the new side" and "eval_strategy" in r["change"]
               for r in section["rows"])



@pytest.mark.parametrize("patch, expected", [
    ("nosuchmod_for_harness:fix", "harness patch nosuchmod_for_harness:fix failed: ModuleNotFoundError"),
    (f"{FAULTS}:no_such_function", "failed: KeyError"),
])
def test_a_patch_that_does_not_apply_stops_the_check(tmp_path: Path, patch: str, expected: str) -> None:
    spec = sides.parse("to", [THIS_VENV], patch=patch)
    with pytest.raises(HarnessError, match="does not start") as refused:
        sides.prepare(spec, tmp_path)
    assert expected in str(refused.value)
    patched = sides.prepare(sides.parse("to", [THIS_VENV], patch=f"{FAULTS}:candidate_faults"), tmp_path)
    assert patched.versions["transformers"]  # a patch that runs: the side starts

# ------------------------------------------------------------------------------------------------ bisect

RELEASES = ["4.46.3", "4.47.0", "4.47.1", "4.48.0rc1", "4.48.0", "4.49.0", "4.50.3", "4.51.3", "4.52.1", "4.53.0",
            "4.54.1", "4.55.0", "4.56.2", "4.57.6", "5.0.0"]


@pytest.mark.parametrize("flip", ["4.47.0", "4.50.3", "4.52.1", "4.57.6"])
def test_bisect_finds_a_planted_flip_in_few_probes(flip: str) -> None:
    from packaging.version import Version

    from harness.upgrade import bisect

    ordered = bisect.between(RELEASES, "4.46.3", "4.57.6")
    assert "4.48.0rc1" not in ordered and ordered[0] == "4.46.3" and ordered[-1] == "4.57.6"
    found = bisect.search(ordered, lambda v: Version(v) < Version(flip))
    assert (found.last_good, found.first_bad) == (ordered[ordered.index(flip) - 1], flip)
    assert len(found.probes) <= 2 + math.ceil(math.log2(len(ordered)))


def test_bisect_towards_a_fix_and_refusals() -> None:
    from packaging.version import Version

    from harness.upgrade import bisect

    newest_first = bisect.between(RELEASES, "5.0.0", "4.46.3")  # good = the newer: where was it fixed?
    found = bisect.search(newest_first, lambda v: Version(v) >= Version("4.52.1"))
    assert (found.last_good, found.first_bad) == ("4.52.1", "4.51.3")
    with pytest.raises(HarnessError, match="passes on both"):
        bisect.search(newest_first, lambda v: True)
    with pytest.raises(HarnessError, match="4.99.0 is not a release"):
        bisect.between(RELEASES, "4.46.3", "4.99.0")


def test_exact_pins_key_a_venv_as_given_and_ranges_need_resolving() -> None:
    from harness.upgrade import venvs

    pinned = ("transformers==4.57.6", "torch==2.13.0")
    assert venvs.resolve(pinned) == pinned  # no resolver needed: the key is the request
    assert venvs.key(pinned) == venvs.key(tuple(reversed(pinned)))
    assert not venvs._pinned("transformers>=5") and not venvs._pinned("transformers==5.*")
    assert venvs._pinned("transformers==5.24.0")


def test_a_side_that_rounds_its_logged_loss_is_compared_at_that_precision() -> None:
    rounded = [(round(loss + 3e-5, 4), g, lr) for loss, g, lr in BASE]  # 4.x logs the loss to 4 decimals
    assert trajectory.rounding(_record("c", rounded), "loss") == pytest.approx(5e-5)
    assert trajectory.rounding(_record("c", BASE), "loss") == 0.0
    result = trajectory.parity([_record("c", rounded)], [_record("c", [(lo + 3e-5, g, lr) for lo, g, lr in BASE])])
    assert result[0].status == trajectory.WITHIN_NOISE and "loss compared at the logged precision" in \
        result[0].describe()
    off = [(loss + 2e-4, g, lr) for loss, g, lr in BASE]  # two grid steps: a real difference
    assert trajectory.parity([_record("c", rounded)], [_record("c", off)])[0].status == trajectory.DIFFERS


def test_an_interrupt_stops_both_sides_at_once(tmp_path: Path) -> None:
    """One side is interrupted while the other runs a long process: that process is terminated and the side
    starts nothing after it."""
    import time

    here = sides.Side(sides.SideSpec("to"), sides.Venv((), Path(sys.prefix)), {})
    started_after: list[str] = []

    def work(side: sides.Side) -> str:
        if side is first:
            time.sleep(0.5)
            raise KeyboardInterrupt
        processes.run_in(side, ["-c", "import time; time.sleep(30)"], tmp_path / "long.log")
        started_after.append("second process")  # must not happen: the interrupt came first
        processes.run_in(side, ["-c", "pass"], tmp_path / "after.log")
        return "done"

    first, second = here, sides.Side(sides.SideSpec("from"), sides.Venv((), Path(sys.prefix)), {})
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        processes.both([first, second], work)
    assert time.perf_counter() - began < 10 and not started_after and not (tmp_path / "after.log").exists()
    processes._STOPPING.clear()


def test_long_steps_report_progress_while_they_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cell as `harness run` starts it and pytest's percentage reach the console before the process ends;
    everything else stays in the side's log."""
    import re
    import time

    heard: list[tuple[float, str]] = []
    began = time.perf_counter()
    monkeypatch.setattr(processes, "_progress", lambda line: heard.append((time.perf_counter() - began, line)))
    side = sides.Side(sides.SideSpec("to"), sides.Venv((), Path(sys.prefix)), {})
    script = ("import sys, time\nprint('[1/2] syn-sst2-tiny-bert-s0', flush=True)\nprint('t.py::a PASSED [ 50%]', "
              "flush=True)\nprint('t.py::b PASSED [ 55%]')\nprint('Generating train split', file=sys.stderr)\n"
              "time.sleep(4)\nprint('[2/2] syn-stsb-tiny-bert-s0')\nprint('t.py::c PASSED [100%]')")
    done = processes.run_in(side, ["-c", script], tmp_path / "side.log", what="2 cell(s)")
    lines = [line for _, line in heard]
    assert [re.sub(r"\d+ s\)", "N s)", line) for line in lines] == [
        "  to: cell [1/2] syn-sst2-tiny-bert-s0 (at N s)", "  to: suites 50 % (at N s)",
        "  to: cell [2/2] syn-stsb-tiny-bert-s0 (at N s)", "  to: suites 100 % (at N s)",
        "  to: 2 cell(s) done (N s)"]  # 55 % is not said: the suites' progress comes every 25 points
    assert heard[0][0] < heard[-1][0] - 2  # the first line came while the process still slept
    assert "Generating train split" in (tmp_path / "side.log").read_text() and done.returncode == 0


def test_a_process_past_its_time_is_stopped_and_says_so(tmp_path: Path) -> None:
    side = sides.Side(sides.SideSpec("to"), sides.Venv((), Path(sys.prefix)), {})
    done = processes.run_in(side, ["-c", "import time; time.sleep(30)"], tmp_path / "slow.log", timeout=1)
    assert done.returncode != 0 and done.stderr.endswith("harness: stopped after 1 s")


def test_a_new_stage_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stage registered once runs in order, its figures reach the HTML page, and the CLI accepts its name."""
    def make(run: check.StageRun) -> check.Section:
        return check.Section("echo", "Echo: the sides' names", status=check.CHANGED,
                             summary=" vs ".join(s.name for s in run.sides), plots={"n": 2})

    echo = check.Stage("echo", "names both sides", make, lambda section: [f"<svg>{section.plots['n']}</svg>"])
    here = [sides.Side(sides.SideSpec(name), sides.Venv((), Path(sys.prefix)), {}) for name in ("from", "to")]
    with check.STAGES.added(echo):
        made = check.run_check(here, check.CheckOptions(stages=("echo",)), tmp_path, progress=lambda line: None)
        assert [(s.stage, s.status, s.summary) for s in made.sections] == [("echo", "changed", "from vs to")]
        assert "<svg>2</svg>" in report.html_page(made)
        assert list(check.CheckOptions().stages)[-1] == "echo"
    assert "echo" not in check.STAGES
    with pytest.raises(SystemExit):
        main(["upgrade-check", "--from", "transformers==4.57.6", "--stages", "echo"])
    assert "Unknown stage 'echo'" in capsys.readouterr().err
