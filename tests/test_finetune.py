"""Your fine-tuning as input (harness.finetune) and the defect-aware verdict built on it (defects' triggers, the
upgrade check's defects section, the training suite failing on a defect your settings trigger)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

import harness.suite.plugin  # noqa: F401  (imported before pytester's module snapshots)
from harness import finetune
from harness.suite import matrix
from harness.core import compat
from harness.errors import HarnessError
from harness.invariants import INVARIANTS, defects, strategies
from harness.upgrade import check

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parent.parent
ACCUMULATE_4 = {"model": "tiny-bert", "task": "syn-mrpc", "seeds": [0, 1],
                "training_arguments": {"gradient_accumulation_steps": 4, "per_device_train_batch_size": 4,
                                       "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "bf16": True,
                                       "label_smoothing_factor": 0.1, "output_dir": "out", "data_seed": 3}}


def test_training_arguments_names_become_the_cells_settings() -> None:
    yours = finetune.parse(ACCUMULATE_4, source="harness.toml")
    assert [c.cell_id for c in yours.configs] == ["yours-syn-mrpc-tiny-bert-bf16-s0", "yours-syn-mrpc-tiny-bert-bf16-s1"]
    first = yours.configs[0]
    assert (first.gradient_accumulation_steps, first.train_batch_size, first.lr_scheduler_type, first.warmup_ratio,
            first.precision, first.label_smoothing_factor, first.sampler_seed) == (4, 4, "cosine", 0.1, "bf16", 0.1, 3)
    assert yours.ignored == ("output_dir",) and "output_dir" in yours.describe()


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"max_steps": 10}, "TrainingArguments setting the harness cannot reproduce yet"),
    ({"gradient_acumulation_steps": 2}, "did you mean gradient_accumulation_steps"),
    ({"lr_scheduler_type": "warmup_stable_decay"}, "Unknown lr_scheduler_type"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be a positive integer"),
    ({"bf16": "yes"}, "bf16 must be true or false"),
])
def test_a_setting_the_harness_cannot_reproduce_is_refused_with_one_message(arguments: dict, expected: str) -> None:
    with pytest.raises(HarnessError, match=expected) as err:
        finetune.parse({"model": "tiny-bert", "task": "syn-mrpc", "training_arguments": arguments},
                       source="harness.toml")
    assert str(err.value).startswith("harness.toml: ")


@pytest.mark.parametrize(("raw", "expected"), [
    ({"task": "syn-mrpc"}, "`model` is required"),
    ({"model": "tiny-bert", "task": "syn-mrpc", "modle": "x"}, "did you mean model"),
    ({"model": "tiny-bert", "task": "syn-mrpc", "seeds": 0}, "seeds must be a non-empty list"),
    ({"model": "tiny-bert", "task": "syn-mrpc", "name": "my cells"}, "name must be a short word"),
    ({"model": "no-such-model", "task": "syn-mrpc"}, "no-such-model"),
])
def test_bad_files_are_refused_naming_the_key(raw: dict, expected: str) -> None:
    with pytest.raises(HarnessError, match=expected):
        finetune.parse(raw, source="harness.toml")


def test_found_in_harness_toml_or_pyproject_and_written_back(tmp_path: Path) -> None:
    assert finetune.discover(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert finetune.discover(tmp_path) is None  # no [tool.harness]: nothing of yours
    (tmp_path / "pyproject.toml").write_text('[tool.harness]\nmodel = "tiny-bert"\ntask = "syn-sst2"\n'
                                             '[tool.harness.training_arguments]\ngradient_accumulation_steps = 2\n')
    found = finetune.discover(tmp_path)
    assert found is not None and found.configs[0].gradient_accumulation_steps == 2 and "[tool.harness]" in found.source
    (tmp_path / "harness.toml").write_text(finetune.to_toml(finetune.parse(ACCUMULATE_4, source="x")))
    again = finetune.discover(tmp_path)  # harness.toml first
    assert again is not None and again.configs == finetune.parse(ACCUMULATE_4, source="x").configs
    with pytest.raises(HarnessError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("model = \n")
        finetune.load(tmp_path / "bad.toml")


def test_a_script_gives_its_literal_training_arguments_and_says_what_it_could_not_read(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from transformers import Trainer, TrainingArguments\n"
                      "class MyTrainer(Trainer):\n    pass\n"
                      "steps = 4\n"
                      "args = TrainingArguments('out', gradient_accumulation_steps=4, lr_scheduler_type='cosine',\n"
                      "                         learning_rate=lr, max_steps=100, report_to='none', **extra)\n")
    yours = finetune.from_script(script)
    config = yours.configs[0]
    assert (config.gradient_accumulation_steps, config.lr_scheduler_type) == (4, "cosine")
    assert yours.unread == ("learning_rate", "**extra")
    assert any("max_steps" in n for n in yours.notes) and any("MyTrainer" in n for n in yours.notes)
    (tmp_path / "none.py").write_text("print(1)\n")
    with pytest.raises(HarnessError, match="no TrainingArguments"):
        finetune.from_script(tmp_path / "none.py")


def test_your_cells_are_a_tier_of_their_own_next_to_the_others() -> None:
    yours = finetune.parse(ACCUMULATE_4, source="x")
    selection = matrix.Selection(yours=yours.configs, overrides={"max_train_samples": 64})
    cells = matrix.cells(matrix.YOURS, selection)
    assert [c.tier for c in cells] == ["yours", "yours"] and all(c.config.max_train_samples == 64 for c in cells)
    assert len(matrix.bench_cells(matrix.YOURS, selection)) == 1
    assert matrix.cells(matrix.YOURS) == []  # no fine-tuning given: no cells
    smoke_ids = {c.id for c in matrix.cells("smoke")}
    assert not smoke_ids & {c.id for c in cells}  # never mistaken for the tier's cell of the same model and task
    # nor by the judges, which group records: a record's group is its config's, name included
    from harness.core.runner import failed_record

    records = [failed_record(c.config, HarnessError("x")) for c in (*cells, *matrix.cells("smoke"))]
    assert [r.group for r in records] == [c.config.group for c in (*cells, *matrix.cells("smoke"))]
    assert records[0].group == "yours-syn-mrpc-tiny-bert-bf16"


# ------------------------------------------------------------------------------------------------ defects

def test_every_defect_says_when_it_bites_and_triggers_follow_the_settings() -> None:
    assert all(d.trigger is not None and d.workaround for d in defects.DEFECTS)
    accumulating = finetune.parse(ACCUMULATE_4, source="x").configs
    plain = finetune.parse({"model": "tiny-bert", "task": "syn-mrpc",
                            "training_arguments": {"lr_scheduler_type": "constant", "warmup_ratio": 0.0}},
                           source="x").configs
    kwargs = defects.by_id("ga-loss-kwargs-dropped")
    assert kwargs.affects(accumulating) == list(accumulating) and kwargs.affects(plain) == []
    assert defects.by_id("bf16-env-leak").affects(accumulating) and not defects.by_id("bf16-env-leak").affects(plain)
    resumed = [dataclasses.replace(plain[0], resume_from_checkpoint="ckpt/checkpoint-2")]
    assert defects.by_id("checkpoint-norm-names-reverted").affects(resumed)
    assert not defects.by_id("lr-logged-one-step-late").affects(plain)


def test_a_resume_defect_is_yours_when_you_save_checkpoints_you_may_resume_from() -> None:
    norms = defects.by_id("checkpoint-norm-names-reverted")
    configs = finetune.parse({"model": "tiny-bert", "task": "syn-mrpc"}, source="x").configs
    assert norms.affects(configs) == []  # the cells themselves never resume
    assert norms.affects(configs, {}) == list(configs)  # TrainingArguments' default save_strategy "steps" saves
    assert norms.affects(configs, {"save_strategy": "epoch", "save_steps": 100}) == list(configs)
    assert norms.affects(configs, {"save_strategy": "no"}) == []
    old, new = {}, {"checkpoint-norm-names-reverted": {"resume"}}
    saving = check.defects_section(old, new, configs, ("5.4.0", "5.5.4"), {"save_strategy": "steps"})
    assert saving.status == check.REGRESSED and "possible whenever checkpoints are saved" in saving.summary
    assert check.defects_section(old, new, configs, ("5.4.0", "5.5.4"), {"save_strategy": "no"}).status == \
        check.CHANGED


def test_a_new_defect_regresses_only_where_your_settings_trigger_it() -> None:
    old = {"ga-mean-of-micro-batch-means": {"accumulation", "loss"}, "bf16-env-leak": {"dtype"}}
    new = {"ga-loss-kwargs-dropped": {"accumulation", "loss"}}
    accumulating = finetune.parse(ACCUMULATE_4, source="x").configs
    single = finetune.parse({"model": "tiny-bert", "task": "syn-mrpc"}, source="x").configs

    nobody = check.defects_section(old, new, (), ("4.57.6", "5.24.0"))
    assert nobody.status == check.REGRESSED and "ga-loss-kwargs-dropped" in nobody.summary
    assert "no fine-tuning given" in nobody.rows[1]["verdict"] or "no fine-tuning given" in nobody.rows[0]["verdict"]
    hit = check.defects_section(old, new, accumulating)
    row = next(r for r in hit.rows if "ga-loss-kwargs-dropped" in r["defect"])
    assert hit.status == check.REGRESSED and "affects your fine-tuning" in row["verdict"]
    assert row["your cells"] == "yours-syn-mrpc-tiny-bert-bf16-s0, yours-syn-mrpc-tiny-bert-bf16-s1"
    assert row["when"] == "gradient_accumulation_steps > 1" and "ExplicitLossTrainer" in row["workaround"]
    missed = check.defects_section(old, new, single)
    assert missed.status == check.CHANGED and "not triggered by your settings" in missed.summary
    fixed = {r["defect"].split("]")[0][1:]: r["verdict"] for r in missed.rows}
    assert fixed["ga-mean-of-micro-batch-means"] == "fixed" and fixed["bf16-env-leak"] == "fixed"
    assert check.defects_section(new, new, ()).status == check.OK  # the same defect on both sides: not new
    assert check.defects_section(None, new, ()).status == check.ERROR  # nothing reported: cannot tell, never ok


def test_the_suite_logs_which_defects_reproduced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "defects.jsonl"
    monkeypatch.setenv(defects.OUTCOMES_ENV, str(out))
    found = defects.DefectVerdict("xfail", "m", ("ga-loss-kwargs-dropped",))
    defects.log_outcome("accumulation", found, "5.24.0")
    defects.log_outcome("loss", found, "5.24.0")
    defects.log_outcome("steps", defects.DefectVerdict("pass", ""), "5.24.0")
    assert defects.read_outcomes(out) == {"ga-loss-kwargs-dropped": {"accumulation", "loss"}}
    assert json.loads(out.read_text().splitlines()[-1])["outcome"] == "pass"


def test_cases_around_your_settings_keep_the_witness_check_meaningful() -> None:
    config = finetune.parse(ACCUMULATE_4, source="x").configs[0]
    for invariant, spec in INVARIANTS.items():
        case = strategies.around(invariant, spec.witness, config)
        if not spec.trains:
            assert case == spec.witness  # nothing of yours maps onto a vocab-file tokenizer
            continue
        assert case.model == "tiny-bert" and case.scheduler == "cosine"
        assert case.precision == ("fp32" if spec.fp32_only else "bf16")
        if invariant != "compute_loss":
            assert case.accumulation == 4
    roberta = dataclasses.replace(config, model="tiny-roberta")
    assert strategies.around("accumulation", INVARIANTS["accumulation"].witness, roberta).model == "tiny-roberta"


def test_pytest_suites_fails_when_your_settings_trigger_a_reproduced_defect(pytester: pytest.Pytester) -> None:
    """The accumulation invariant on the installed transformers: a known accumulation defect reproduces on every
    supported version (4.x: micro-batch means; 5.x: dropped loss kwargs). Without a config it is an expected
    failure; with gradient_accumulation_steps = 4 it fails, naming the defect; with 1 it stays an xfail."""
    version = compat.TRANSFORMERS_VERSION
    if not any(d.invariant == "accumulation" for d in defects.defects_for(version)):
        pytest.skip(f"no known accumulation defect on transformers {version}")
    pytester.makepyfile(test_copy_training=(REPO / "suites" / "test_training.py").read_text())
    args = ["-p", "harness.suite.plugin", "--harness-record-dir", "none", "-k", "accumulation and not cuda", "-q"]
    pytester.makefile(".toml", four='model = "tiny-bert"\ntask = "syn-mrpc"\n[training_arguments]\n'
                                    'gradient_accumulation_steps = 4\n',
                      one='model = "tiny-bert"\ntask = "syn-mrpc"\n[training_arguments]\n'
                          'gradient_accumulation_steps = 1\n')
    plain = pytester.runpytest_subprocess(*args)
    plain.assert_outcomes(xfailed=1)
    triggered = pytester.runpytest_subprocess(*args, "--harness-config", "four.toml")
    triggered.assert_outcomes(failed=1)
    triggered.stdout.fnmatch_lines(["*your fine-tuning triggers them*", "*gradient_accumulation_steps > 1*"])
    untouched = pytester.runpytest_subprocess(*args, "--harness-config", "one.toml")
    untouched.assert_outcomes(xfailed=1)
    assert "your fine-tuning triggers them" not in untouched.stdout.str()


def test_a_bad_config_stops_pytest_before_anything_trains(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", bad='model = "tiny-bert"\ntask = "syn-mrpc"\n[training_arguments]\nmax_steps = 3\n')
    result = pytester.runpytest_subprocess("-p", "harness.suite.plugin", "--harness-config", "bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*max_steps is a TrainingArguments setting the harness cannot reproduce*"])


def test_harness_run_takes_the_config_and_exact_run_configs(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli import build_parser
    from harness.commands import run

    (tmp_path / "harness.toml").write_text(finetune.to_toml(finetune.parse(ACCUMULATE_4, source="x")))
    monkeypatch.chdir(tmp_path)
    planned = run.plan(build_parser().parse_args(["run", "--max-train-samples", "64"]))
    assert [c.cell_id for c in planned] == ["yours-syn-mrpc-tiny-bert-bf16-s0", "yours-syn-mrpc-tiny-bert-bf16-s1"]
    assert all(c.max_train_samples == 64 and c.gradient_accumulation_steps == 4 for c in planned)
    with_tier = run.plan(build_parser().parse_args(["run", "--tier", "smoke"]))
    assert len(with_tier) == len(matrix.cells("smoke")) + 2
    exact = tmp_path / "configs.json"
    exact.write_text(json.dumps([dataclasses.asdict(planned[0])]))
    assert run.plan(build_parser().parse_args(["run", "--run-configs", str(exact)])) == [planned[0]]
    exact.write_text(json.dumps([{"model": "tiny-bert"}]))
    with pytest.raises(HarnessError, match="not a JSON list of RunConfig"):
        run.plan(build_parser().parse_args(["run", "--run-configs", str(exact)]))
    assert tomllib.loads((tmp_path / "harness.toml").read_text())["training_arguments"]["bf16"] is True


def test_a_setting_one_side_cannot_train_is_found_before_anything_trains(tmp_path: Path) -> None:
    import sys

    from harness.upgrade import sides, venvs

    here = sides.Side(sides.SideSpec("to"), venvs.Venv((), Path(sys.prefix)), {"transformers": "x"})
    fine = finetune.parse(ACCUMULATE_4, source="x").configs
    assert check.unexpressible([here], fine, tmp_path) == {"to": []}
    assert check.unexpressible([here], (), tmp_path) == {"to": []}  # no fine-tuning: nothing to ask
    unknown = [dataclasses.replace(fine[0], trainer_class="harness.core.trainers:NoSuchTrainer")]
    [refusal] = check.unexpressible([here], unknown, tmp_path)["to"]
    assert refusal.startswith("yours-syn-mrpc-tiny-bert-bf16-s0: ") and "NoSuchTrainer" in refusal
