"""`harness replay`: venv keys and specs, JUnit outcomes to a version x test table (no venv is built here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.upgrade import replay, venvs

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="suites.test_training" name="test_accumulation[tiny-bert]"/>
<testcase classname="suites.test_training" name="test_accumulation[tiny-roberta]">
  <failure message="gradient accumulation: logged loss differs at step 3">trace</failure></testcase>
<testcase classname="suites.test_training" name="test_schedule[tiny-bert]">
  <skipped type="pytest.xfail" message="known defect tf-1234: off by one step"/></testcase>
<testcase classname="suites.test_training" name="test_resume[tiny-bert]">
  <skipped type="pytest.skip" message="needs CUDA"/></testcase>
</testsuite></testsuites>"""


def test_junit_outcomes_and_summary(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_text(JUNIT)
    cases = replay.read_junit(path)
    assert [(c.test, c.case, c.outcome) for c in cases] == [
        ("test_accumulation", "tiny-bert", "passed"), ("test_accumulation", "tiny-roberta", "failed"),
        ("test_schedule", "tiny-bert", "xfailed"), ("test_resume", "tiny-bert", "skipped")]
    assert replay.summarize(cases) == {"test_accumulation": "FAILED 1/2", "test_schedule": "known defect 1/1",
                                       "test_resume": "skipped 1/1"}
    assert replay.summarize(cases, by_case=True)["test_accumulation[tiny-roberta]"] == "FAILED 1/1"
    text = replay.markdown({"4.46.3": cases, "5.24.0": cases[:1]}, title="t")
    assert "| test_accumulation | FAILED 1/2 | passed 1 |" in text
    assert "- 4.46.3 test_accumulation[tiny-roberta] (failed): gradient accumulation: logged loss differs" in text


def test_specs_keep_this_torch_and_keys_are_stable() -> None:
    import importlib.metadata

    assert venvs.transformers_spec("4.46.3") == ("transformers==4.46.3",)
    assert venvs.transformers_spec("transformers>=5,<5.1") == ("transformers>=5,<5.1",)
    torch = importlib.metadata.version("torch").split("+")[0]
    assert venvs._torch_spec(("transformers==4.46.3",)) == (f"torch=={torch}",)
    assert venvs._torch_spec(("torch==2.9.1", "transformers==4.46.3")) == ()
    assert venvs.key(("a", "b")) == venvs.key(("b", "a")) != venvs.key(("a",))


def test_uv_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(venvs.shutil, "which", lambda name: None)
    with pytest.raises(HarnessError, match="needs uv.*pip install uv"):
        venvs.ensure(("transformers==4.46.3",))


def test_bad_version_list_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--versions", ","])
    assert "expected one or more transformers version names" in capsys.readouterr().err


def test_tables_are_named_after_the_marker() -> None:
    from harness.commands.replay import table_name

    assert table_name("training") == "training"
    assert table_name("training or contract") == "training-or-contract"
    assert table_name("not (a)") == "not-a"


def test_a_known_defect_message_keeps_every_defect_it_names() -> None:
    message = ("known defect(s) on transformers 4.46.3:\n"
               "  floor (transformers >=4.46,<4.52, https://github.com/o/r/issues/1): a summary long enough to push "
               + "the next one past any cut " * 12 + "\n"
               "  rng (transformers >=4.46,<4.47, https://github.com/o/r/issues/2): another summary\n"
               "first break seen:\n  [resume] resume (tiny-bert): train() raised UnpicklingError")
    short = replay.known_defects(message)
    assert short == ("known defect(s) floor (>=4.46,<4.52, https://github.com/o/r/issues/1); rng (>=4.46,<4.47, "
                     "https://github.com/o/r/issues/2); first break: [resume] resume (tiny-bert): train() raised "
                     "UnpicklingError")
    assert replay.known_defects("known defect tf-1234: off by one step") == "known defect tf-1234: off by one step"
