"""Injected faults are flagged by the suite, through the real plugin, with the right cell and metric named.

One clean baseline is produced per module (a `pytest suites/test_smoke.py --harness-update-baselines` subprocess on
one reduced tiny cell), then each fault runs the same suite once, in process, with the fault monkeypatched into the
library boundary (harness.core.compat, where the harness meets transformers):

- learning rate x0.1 (TrainingArguments receive a tenth of the configured rate, the config still says 1e-3);
- attention mask ignored (the collator's attention_mask is all ones: padding is attended, in training and eval);
- labels shuffled in training (the train split's labels permuted; eval untouched);
- predict() returning one row fewer (the eval-set judge flags it; the quality judge must not crash on it);
- training 15 % slower per step: deterministically on synthetic timings through the verdict path the plugin uses,
  and end to end through pytest-benchmark when the machine holds still long enough to judge throughput.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Imported here, before any in-process inner run: pytester drops modules first imported inside a run, and
# datasets/pyarrow cannot be imported twice in one process.
import harness.suite.plugin  # noqa: F401
import harness.core.runner  # noqa: F401
import harness.core.throughput  # noqa: F401
from harness.core.config import make_config
from harness.judging import registry
from harness.core.evidence import Evidence, Measurement
from harness.core import compat
from harness.reporting import render as report
from harness.judging.verdict import NOT_COMPARABLE, REGRESSED, UNCHANGED

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
CELL = "syn-sst2-tiny-bert"
# One cell, reduced: 192 optimizer steps, ~5 s on one CPU thread; learns syn-sst2 to ~0.81 (chance 0.53).
FAST = ["-p", "harness.suite.plugin", "--strict-markers", "--harness-models", "tiny-bert",
        "--harness-tasks", "syn-sst2", "--harness-override", "max_train_samples=2048", "--harness-override",
        "epochs=3", "--harness-record-dir", "none"]
SUITE_FILES = ("test_smoke.py", "test_throughput.py")
QUALITY = ("-m", "smoke and not benchmark")  # (not -k: pytester's folder names contain the test's name)
TRAIN_SPEED = ("-m", "benchmark", "-k", "train_throughput")


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """Train and predict once in this process: pytester drops modules first imported inside an in-process run,
    and torch/datasets register global state at import, so everything training touches is imported up front."""
    from harness.core import runner
    from harness.core import throughput

    config = make_config("tiny-bert", "syn-sst2", max_train_samples=64, max_eval_samples=64, epochs=1.0)
    runner.run(config)
    throughput.EvalBench(config, eval_samples=64).measure(1)


@pytest.fixture(scope="module")
def clean_baselines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean quality baseline for the reduced cell, written by the suite itself in a separate process."""
    project = tmp_path_factory.mktemp("clean")
    for name in SUITE_FILES:
        (project / f"test_copy_{name[5:]}").write_text((REPO / "suites" / name).read_text())
    root = project / "baselines"
    done = subprocess.run([sys.executable, "-m", "pytest", "test_copy_smoke.py", *FAST,
                           "--harness-baselines", str(root),
                           *QUALITY, "--harness-update-baselines", "-q", "-p", "no:cacheprovider"],
                          cwd=project, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "smoke" / "any" / f"{CELL}-s0.json").is_file(), done.stdout
    return root


def _suite(pytester: pytest.Pytester) -> None:
    # Renamed copies: a session that also collects suites/ has imported modules named test_smoke etc. already.
    for name in SUITE_FILES:
        pytester.makepyfile(**{f"test_copy_{name[5:-3]}": (REPO / "suites" / name).read_text()})


def _run(pytester: pytest.Pytester, root: Path, *extra: str) -> pytest.RunResult:
    _suite(pytester)
    return pytester.runpytest_inprocess(*FAST, "--harness-baselines", str(root), *extra)


# ------------------------------------------------------------------------------------------------ faults

def lr_tenth(monkeypatch: pytest.MonkeyPatch) -> None:
    original = compat.training_arguments

    def scaled(**kwargs: Any) -> Any:
        return original(**{**kwargs, "learning_rate": kwargs["learning_rate"] * 0.1})

    monkeypatch.setattr(compat, "training_arguments", scaled)


def _wrap_trainer(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    original = compat.trainer

    @functools.wraps(original)
    def wrapped(**kwargs: Any) -> Any:
        return original(**change(kwargs))

    monkeypatch.setattr(compat, "trainer", wrapped)


def attention_mask_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def change(kwargs: dict[str, Any]) -> dict[str, Any]:
        collate = kwargs["data_collator"]

        def unmasked(features: list[dict[str, Any]]) -> Any:
            batch = collate(features)
            batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
            return batch

        return {**kwargs, "data_collator": unmasked}

    _wrap_trainer(monkeypatch, change)


def labels_shuffled(monkeypatch: pytest.MonkeyPatch) -> None:
    def change(kwargs: dict[str, Any]) -> dict[str, Any]:
        train = kwargs.get("train_dataset")
        if train is None:
            return kwargs
        labels = np.asarray(train["label"])
        shuffled = labels[np.random.default_rng(0).permutation(len(labels))]
        return {**kwargs, "train_dataset": train.remove_columns("label").add_column("label", shuffled.tolist())}

    _wrap_trainer(monkeypatch, change)


class SlowDown:
    """A TrainerCallback that makes every optimizer step `fraction` longer than the previous step took without it
    (busy-waiting inside the step: time.sleep wakes late on a loaded machine and would stretch it far more)."""

    def __new__(cls, fraction: float) -> Any:
        from transformers import TrainerCallback

        class _SlowDown(TrainerCallback):
            clean_seconds: float | None = None  # the last step's duration without the injected delay
            delay = 0.0

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self.started = time.perf_counter()

            def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                begin = time.perf_counter()
                reference = self.clean_seconds or (begin - self.started)
                while time.perf_counter() < begin + fraction * reference:
                    pass
                self.delay = time.perf_counter() - begin

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self.clean_seconds = time.perf_counter() - self.started - self.delay

        return _SlowDown()


def predict_one_row_fewer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainer.predict() loses the last eval example (as a dropped partial batch would)."""
    original = compat.trainer

    def wrapped(**kwargs: Any) -> Any:
        trainer = original(**kwargs)
        predict = trainer.predict

        def shortened(*args: Any, **kw: Any) -> Any:
            out = predict(*args, **kw)
            return type(out)(out.predictions[:-1], out.label_ids[:-1], out.metrics)

        trainer.predict = shortened
        return trainer

    monkeypatch.setattr(compat, "trainer", wrapped)


def slower_steps(monkeypatch: pytest.MonkeyPatch, fraction: float = 0.15) -> None:
    _wrap_trainer(monkeypatch, lambda kw: {**kw, "callbacks": [*(kw.get("callbacks") or []), SlowDown(fraction)]})


# ------------------------------------------------------------------------------------------------ tests

def test_clean_rerun_is_unchanged_and_bit_identical(pytester: pytest.Pytester, clean_baselines: Path) -> None:
    result = _run(pytester, clean_baselines, *QUALITY)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    table = result.stdout.str()
    quality = next(line for line in table.splitlines() if line.startswith(CELL) and " accuracy " in line)
    assert "unchanged" in quality and "1.000" in quality and "+0.0000" in quality  # p = 1: identical predictions
    assert "harness::regressions" not in table


@pytest.mark.parametrize("inject, metrics", [
    (lr_tenth, ["accuracy", "steps to 90% accuracy"]),
    (attention_mask_ignored, ["accuracy"]),
    (labels_shuffled, ["accuracy", "steps to 90% accuracy"]),
], ids=["lr-x0.1", "attention-mask-ignored", "labels-shuffled"])
def test_quality_fault_is_flagged(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                  clean_baselines: Path, inject: Any, metrics: list[str]) -> None:
    inject(monkeypatch)
    result = _run(pytester, clean_baselines, *QUALITY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)  # the measuring tests pass; the session fails once
    out = result.stdout.str()
    failed_lines = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed_lines) == 1 and "harness::regressions" in failed_lines[0], failed_lines
    failure = out[out.index("regression(s) against the committed baselines"):]
    for metric in metrics:
        assert f"- {CELL} {metric}:" in failure, failure
    rows = [line for line in out.splitlines() if line.startswith(CELL)]
    assert any(" accuracy " in r and "REGRESSED" in r for r in rows), rows


def test_predict_one_row_fewer_is_a_regression_verdict(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                       clean_baselines: Path) -> None:
    predict_one_row_fewer(monkeypatch)
    result = _run(pytester, clean_baselines, *QUALITY)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)
    failure = out[out.index("regression(s) against the committed baselines"):]
    assert f"- {CELL} eval examples scored: 512 -> 511" in failure, failure
    assert "predict() returned 511 predictions for 512 eval examples" in failure


def test_fifteen_percent_slower_steps_flagged_on_synthetic_timings() -> None:
    """The throughput judge, as the plugin runs it, on timings with a known 15 % slowdown."""
    rng = np.random.default_rng(0)
    clean = (0.014 * rng.lognormal(0, 0.06, 175)).round(6).tolist()
    reference = [0.0033] * 10

    def measurement(steps: list[float], ref: list[float] = reference) -> Measurement:
        context = {"config": {"train_batch_size": 32, "eval_batch_size": 64, "max_length": 64, "precision": "fp32"},
                   "model": {"num_parameters": 2_000_000}, "env": {"env_key": "tf-test"}}
        return Measurement(group=CELL, device_class="cpu-test-x1t", context=context, parts={"train": {
            "step_seconds": steps, "reference_seconds": ref, "samples_per_second": 32 / 0.014,
            "tokens_per_second": 320 / 0.014}})

    def judged(now: Measurement) -> Any:
        verdict, = registry.judge(Evidence(measurements=[now]), Evidence(measurements=[base]), kinds=["throughput"])
        return verdict

    base = measurement(clean)
    slowed = [s * 1.15 for s in (0.014 * rng.lognormal(0, 0.06, 175))]
    regressed = judged(measurement(slowed))
    assert regressed.verdict == REGRESSED and regressed.delta == pytest.approx(0.15, abs=0.03)
    assert f"{CELL} train s/step" in report.failure_text([regressed])
    assert judged(measurement((0.014 * rng.lognormal(0, 0.06, 175)).tolist())).verdict == UNCHANGED
    assert judged(measurement(slowed, [0.0045] * 10)).verdict == NOT_COMPARABLE


def test_fifteen_percent_slower_steps_flagged_end_to_end(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """Clean baseline and slowed run measured back to back through pytest-benchmark. Real time on a shared machine:
    retried once, and skipped (not passed) when the suite itself refused to judge because the machine changed."""
    rows, busiest = [], 0.0
    for attempt in range(3):
        root = tmp_path / f"attempt{attempt}"
        clean = _run(pytester, root, *TRAIN_SPEED, "--harness-update-baselines")
        assert clean.ret == 0, clean.stdout.str()
        with monkeypatch.context() as patch:
            slower_steps(patch, 0.15)
            slowed = _run(pytester, root, *TRAIN_SPEED, "--harness-markdown", str(root / "v.md"))
        verdict = json.loads((root / "v.json").read_text())["verdicts"][0]
        rows.append(f"{verdict['verdict']} {verdict['delta']}: {verdict['detail']}")
        loads = re.findall(r"other processes used ([\d.]+) cores now, ([\d.]+)", verdict["detail"])
        busy = [float(x) for x in loads[0]] if loads else [0.0]
        busiest = max(busiest, *busy)
        if verdict["verdict"] == REGRESSED:
            break
    else:
        if busiest > 0.25 or all(NOT_COMPARABLE in row for row in rows):
            pytest.skip(f"other processes used up to {busiest:.2f} CPU cores while measuring: real-time throughput "
                        "needs a quiet machine (the synthetic-timing test above covers the verdict). " + rows[-1])
        pytest.fail("a 15 % slower step was not flagged on a quiet machine:\n" + "\n".join(rows))
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    assert f"- {CELL} train s/step:" in slowed.stdout.str()
