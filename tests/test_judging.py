"""The judging pipeline: comparability, each judge, environments side by side, a new kind plugged in, `compare`."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.core.record import RunRecord
from harness.judging import comparability, registry
from harness.core.evidence import Evidence
from harness.judging.judge import Judge, JudgeSettings, Key
from harness.judging.verdict import NOT_COMPARABLE, REGRESSED, UNCHANGED, Verdict
from harness.store.results import write_record

from test_baselines import make_record

GROUP = "syn-sst2-tiny-bert"


def rec(**kwargs: Any) -> RunRecord:
    return RunRecord.from_dict(make_record(**kwargs))


def verdicts_of(kind: str, candidate: Sequence[RunRecord], baseline: Sequence[RunRecord]) -> list[Verdict]:
    return registry.judge(Evidence(records=list(candidate)), Evidence(records=list(baseline)), kinds=[kind])


def test_comparability_rules() -> None:
    base = rec()
    hint = "make one"
    assert comparability.why_not_comparable(base, rec(), hint=hint) is None
    assert "learning_rate" in comparability.why_not_comparable(base, rec(lr=1e-4), hint=hint)
    other_data = copy.deepcopy(base)
    other_data.data["rows_sha256"] = {"validation": "changed"}
    assert "data differ" in comparability.why_not_comparable(base, other_data, hint=hint)
    moved = copy.deepcopy(base)
    moved.data["location"] = "/elsewhere"
    assert comparability.why_not_comparable(base, moved, hint=hint) is None
    newer_task = copy.deepcopy(base)
    newer_task.task["version"] = 2
    assert "version 2" in comparability.why_not_comparable(base, newer_task, hint=hint)
    assert comparability.pairable(base, rec()) is None
    assert "unpaired" in comparability.pairable(base, rec(weights="w2"))


def test_quality_judge() -> None:
    base = [rec(accuracy=0.9)]
    same = verdicts_of("quality", [rec(accuracy=0.9)], base)
    assert [v.verdict for v in same] == [UNCHANGED] and same[0].p_value == 1.0
    worse = verdicts_of("quality", [rec(accuracy=0.6)], base)
    assert worse[0].verdict == REGRESSED and worse[0].metric == "accuracy" and worse[0].cell == GROUP
    missing = verdicts_of("quality", [rec()], [])
    assert missing[0].verdict == NOT_COMPARABLE and "--harness-update-baselines" in missing[0].detail
    assert missing[0].now == pytest.approx(0.9)  # the current value is shown even with nothing to judge it by
    other_lr = verdicts_of("quality", [rec(lr=1e-4)], base)
    assert other_lr[0].verdict == NOT_COMPARABLE and "learning_rate" in other_lr[0].detail
    assert (other_lr[0].baseline, other_lr[0].now) == (pytest.approx(0.9), pytest.approx(0.9))
    assert "unpaired" in verdicts_of("quality", [rec(weights="w2")], base)[0].detail


def test_convergence_judge_reports_steps_and_seconds() -> None:
    verdict, = verdicts_of("convergence", [rec(accuracy=0.9)], [rec(accuracy=0.9)])
    assert verdict.verdict == UNCHANGED and verdict.now == 20
    assert verdict.extras["seconds_now"] == pytest.approx(0.2)


def test_machine_drift_gate() -> None:
    steady = {"reference_seconds": [0.0033] * 6}
    drift = comparability.machine_drift
    assert drift(steady, {"reference_seconds": [0.0034] * 6}, tolerance=0.1) is None
    slower = drift(steady, {"reference_seconds": [0.004] * 6}, tolerance=0.1)
    assert slower and "+21% slower" in slower
    unsteady = drift(steady, {"reference_seconds": [0.0033, 0.006]}, tolerance=0.1)
    assert drift(steady, {"reference_seconds": [0.0033] * 5 + [0.006]}, tolerance=0.1) is None
    busy = drift({**steady, "busy_cores": 0.02}, {**steady, "busy_cores": 1.03}, tolerance=0.1, busy_tolerance=0.25)
    assert busy and "other processes used 1.03 CPU cores" in busy
    assert unsteady and "unsteady" in unsteady


def one_row_fewer(record: RunRecord) -> RunRecord:
    """predict() dropped the last eval example (e.g. a lost partial batch); ids still list every example."""
    out = copy.deepcopy(record)
    stored = out.predictions["validation"]
    stored["predictions"], stored["labels"] = stored["predictions"][:-1], stored["labels"][:-1]
    out.data["rows"] = {"validation": len(stored["idx"])}
    return out


def test_predict_one_row_fewer_is_an_eval_set_regression_not_a_crash() -> None:
    base = rec(accuracy=0.9)
    base.data["rows"] = {"validation": 200}
    found = registry.judge(Evidence(records=[one_row_fewer(base)]), Evidence(records=[base]))
    by_kind = {v.kind: v for v in found}
    eval_set = by_kind["eval set"]
    assert eval_set.verdict == REGRESSED and eval_set.cell == GROUP and (eval_set.baseline, eval_set.now) == (200, 199)
    assert "predict() returned 199 predictions for 200 eval examples" in eval_set.regression_message()
    assert "not aligned" in by_kind["quality"].detail  # judged unpaired instead of raising IndexError


def test_two_environments_are_judged_side_by_side() -> None:
    old = rec(accuracy=0.9)
    new_same = rec(accuracy=0.9)
    new_same.env.update(env_key="tf-new", packages={"transformers": "9.9.9", "torch": "2.13.0"})
    new_worse = rec(accuracy=0.6)
    new_worse.env.update(env_key="tf-newer", packages={"transformers": "10.0.0", "torch": "2.13.0"})
    found = verdicts_of("quality", [new_same, new_worse], [old])
    assert [(v.env, v.verdict) for v in found] == [("transformers 9.9.9, torch 2.13.0", UNCHANGED),
                                                   ("transformers 10.0.0, torch 2.13.0", REGRESSED)]


def test_throughput_from_fine_tuning_steps_same_device_only() -> None:
    base = rec()
    base.timings["train_step_seconds"] = [0.010 + 0.0001 * (i % 7) for i in range(60)]
    base.timings["machine"] = {"reference_seconds": [0.0033, 0.0034], "busy_cores": 0.01}
    slower = copy.deepcopy(base)
    slower.timings["train_step_seconds"] = [s * 1.3 for s in base.timings["train_step_seconds"]]
    verdict, = verdicts_of("throughput", [slower], [base])
    assert verdict.verdict == REGRESSED and verdict.metric == "train s/step (fine-tuning run)"
    assert verdict.delta == pytest.approx(0.3)
    slow_machine = copy.deepcopy(slower)  # the whole machine 30 % slower: drift, not a regression
    slow_machine.timings["machine"]["reference_seconds"] = [0.0043, 0.0044]
    verdict, = verdicts_of("throughput", [slow_machine], [base])
    assert verdict.verdict == NOT_COMPARABLE and "another speed" in verdict.detail
    unwitnessed = copy.deepcopy(base)
    del unwitnessed.timings["machine"]
    verdict, = verdicts_of("throughput", [slower], [unwitnessed])
    assert verdict.verdict == NOT_COMPARABLE and "baseline's run carries no machine-speed reference" in verdict.detail
    elsewhere = copy.deepcopy(slower)
    elsewhere.env["device_class"] = "cpu-other-x1t"
    verdict, = verdicts_of("throughput", [elsewhere], [base])
    assert verdict.verdict == NOT_COMPARABLE and "cpu-other-x1t" in verdict.detail and "cpu-test-x1t" in verdict.detail


class LossJudge(Judge):
    """A new verdict kind for the test: the final logged training loss may not grow by more than half."""

    kind = "final loss"

    def collect(self, evidence: Evidence) -> dict[Key, Sequence[RunRecord]]:
        return evidence.latest_records()

    def judge_group(self, group: str, now: Sequence[RunRecord], baseline: Sequence[RunRecord],
                    settings: JudgeSettings) -> list[Verdict]:
        before, after = baseline[0].train_loss[-1]["loss"], now[0].train_loss[-1]["loss"]
        verdict = REGRESSED if after > 1.5 * before else UNCHANGED
        return [Verdict(cell=group, kind=self.kind, metric="final train loss", verdict=verdict, baseline=before,
                        now=after)]


def test_a_new_verdict_kind_is_one_class_and_one_registration() -> None:
    base, worse = rec(), rec()
    base.train_loss.append({"step": 20, "epoch": 1.0, "loss": 0.2})
    worse.train_loss.append({"step": 20, "epoch": 1.0, "loss": 0.9})
    with registry.JUDGES.added(LossJudge()):
        found = registry.judge(Evidence(records=[worse]), Evidence(records=[base]))
    assert "final loss" not in registry.JUDGES
    assert [(v.kind, v.verdict) for v in found if v.kind == "final loss"] == [("final loss", REGRESSED)]


def test_compare_command_two_record_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, worse = make_record(accuracy=0.9), {**make_record(accuracy=0.6), "created_at": "2026-01-02T00:00:00+00:00"}
    write_record(base, tmp_path / "a")
    write_record(worse, tmp_path / "b")
    out = tmp_path / "out"
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(out)]) == 1
    captured = capsys.readouterr()
    assert "REGRESSED" in captured.out and f"{GROUP} accuracy" in captured.err
    assert "**REGRESSED**" in (out / "verdicts.md").read_text()
    assert cli.main(["report", str(out / "verdicts.json"), "--format", "csv"]) == 1
    assert capsys.readouterr().out.startswith("cell,env,kind,metric,baseline,now")
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 0


def test_compare_and_report_refuse_bad_inputs_with_one_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_record(make_record(), tmp_path / "a")
    (tmp_path / "a" / "list.json").write_text(json.dumps([1, 2]))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "list.json holds a JSON list, not the object of a run record" in err and "Traceback" not in err
    write_record(make_record(), tmp_path / "clean")
    assert cli.main(["compare", str(tmp_path / "clean"), str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "verdicts.json")]) == 2
    err = capsys.readouterr().err
    assert "verdicts.json does not exist" in err and "pytest suites/" in err and "harness compare" in err


def test_verdict_dict_round_trip_keeps_env_and_note() -> None:
    verdict = dataclasses.replace(verdicts_of("quality", [rec(accuracy=0.6)], [rec()])[0], env="tf 9")
    assert Verdict.from_dict(verdict.to_dict()) == verdict and verdict.note


def test_world_size_is_a_judged_setting_and_old_records_ran_alone() -> None:
    from harness.judging.comparability import config_differences

    assert config_differences({"preset": "smoke"}, {"preset": "smoke", "world_size": 1}) == []
    assert config_differences({"preset": "smoke"}, {"preset": "smoke", "world_size": 2}) == [
        "world_size 1 in the baseline, 2 now"]


def test_compare_with_nothing_in_common_judges_nothing_and_says_so(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_record(make_record(task="syn-sst2"), tmp_path / "a")
    write_record(make_record(task="syn-mrpc"), tmp_path / "b")
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 3
    out, err = capsys.readouterr()
    assert "nothing was judged" in err and "unchanged" not in out.split("\n\n")[-1]
    assert "unchanged" not in "".join(line for line in out.splitlines() if "eval set" in line)


def test_a_candidate_without_its_metric_is_a_regression_not_noise(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    broken = make_record()
    broken["metrics"] = {"validation": {"accuracy": float("nan")}}
    broken["predictions"] = None
    write_record(make_record(), tmp_path / "a")
    write_record(broken, tmp_path / "b")
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out, err = capsys.readouterr()
    assert "regressed" in out and "no accuracy (NaN or missing)" in err
