"""pytest-xdist and torchrun topology: `pytest -n 2` judges like a serial session, one GPU per worker, each cell
fine-tuned once; the rank and world-size helpers behind "only rank 0 writes".

The -n 2 test drives real pytest-xdist workers in subprocesses; fine-tuning there is replaced by canned records (a
conftest replaces harness.core.runner.run_cell in each process), so no cell trains and the verdicts are real."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.suite import matrix
from harness.core import distributed
from harness.core.config import make_config
from harness.core.record import RunRecord
from harness.errors import HarnessError
from harness.store import baselines

import harness.suite.plugin  # noqa: F401  (imported before pytester's module snapshots)

from test_baselines import make_record

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("visible", "expected"), [
    (["0", "1"], ["0", "1", "0", "1", "0"]),  # more workers than GPUs: round robin
    (["3", "5", "6"], ["3", "5", "6", "3", "5"]),  # the GPUs CUDA_VISIBLE_DEVICES left, in its order
    (["GPU-8a1f", "GPU-22c0"], ["GPU-8a1f", "GPU-22c0", "GPU-8a1f", "GPU-22c0", "GPU-8a1f"]),  # UUIDs too
    ([], [None] * 5),  # no GPU: leave the environment alone
])
def test_each_worker_gets_one_gpu(visible: list[str], expected: list[str | None]) -> None:
    assert [distributed.worker_gpu(f"gw{i}", visible) for i in range(5)] == expected


def test_visible_gpus_come_from_the_environment_else_the_device_count() -> None:
    assert distributed.visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}, count=lambda: 8) == ["2", "3"]
    assert distributed.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=lambda: 8) == []
    assert distributed.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, count=lambda: 8) == []
    assert distributed.visible_gpus({}, count=lambda: 4) == ["0", "1", "2", "3"]
    assert distributed.visible_gpus({}, count=lambda: 0) == []


def test_bad_worker_ids_and_ranks_are_refused() -> None:
    with pytest.raises(HarnessError, match="not of the form gw<N>"):
        distributed.worker_gpu("worker1", ["0"])
    with pytest.raises(HarnessError, match="WORLD_SIZE='two' is not a whole number"):
        distributed.world_size({"WORLD_SIZE": "two"})


def test_rank_zero_is_the_main_process() -> None:
    assert distributed.is_main_process({}) and distributed.world_size({}) == 1
    assert distributed.is_main_process({"RANK": "0", "WORLD_SIZE": "2"})
    assert not distributed.is_main_process({"RANK": "1", "WORLD_SIZE": "2"})
    assert distributed.world_size({"WORLD_SIZE": "4"}) == 4


# A conftest for the pytester folder: canned fine-tuning in every process (controller and workers), a log line per
# fine-tuned cell, and each process's CUDA_VISIBLE_DEVICES as its session starts.
CONFTEST = '''
import dataclasses, json, os, sys, types
from pathlib import Path

sys.path.insert(0, {tests!r})
import harness.core
from harness.core.record import RunRecord
from test_baselines import make_record

PROBE = Path(os.environ["HARNESS_TEST_PROBE"])
ACCURACY = json.loads(os.environ.get("HARNESS_TEST_ACCURACY", "{{}}"))


def run_cell(config, callbacks=()):
    record = make_record(seed=config.seed, task=config.task, model=config.model,
                         accuracy=ACCURACY.get(config.cell_id, 0.9))
    record["config"] = {{**dataclasses.asdict(config), "resolved_device": "cpu"}}
    with open(PROBE / "fine-tuned.txt", "a") as log:
        log.write(config.cell_id + "\\n")
    return RunRecord(**record)


if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker only fine-tunes: a stand-in runner spares it torch's import
    sys.modules["harness.core.runner"] = harness.core.runner = types.SimpleNamespace(run_cell=run_cell)
else:  # the serial session and the controller judge, and list known defects through the real module
    import harness.core.runner
    harness.core.runner.run_cell = run_cell


def pytest_sessionstart(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    (PROBE / f"gpu-{{worker}}.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
'''


def _baselines(root: Path, cells: list[tuple[str, str, int]]) -> None:
    tier = {cell.id: cell.config for cell in matrix.cells("smoke", matrix.Selection(
        models=tuple({m for _, m, _ in cells}), tasks=tuple({t for t, _, _ in cells}),
        seeds=tuple({s for _, _, s in cells})))}
    for task, model, seed in cells:
        record = RunRecord.from_dict(make_record(seed=seed, task=task, model=model))
        config = tier[make_config(model, task, seed=seed).cell_id]  # as the smoke tier makes it
        record = dataclasses.replace(record, config={**dataclasses.asdict(config), "resolved_device": "cpu"})
        path = baselines.quality_path(root, "smoke", record.cell)
        baselines.write_baseline(path, baselines.quality_baseline(record, tier="smoke"))


def test_n2_gives_the_serial_verdicts_with_one_gpu_per_worker(pytester: pytest.Pytester, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a test dependency: pip install -e '.[test]'")
    pytester.makepyfile(test_copy_smoke=(REPO / "suites" / "test_smoke.py").read_text())
    pytester.makeconftest(CONFTEST.format(tests=str(TESTS)))
    models, tasks, seeds = ("tiny-bert", "tiny-roberta"), ("syn-sst2", "syn-mrpc"), (0, 1, 2)
    _baselines(tmp_path / "baselines", [(t, m, s) for t in tasks for m in models for s in seeds])
    # one seed of one group falls: judged over its three seeds, as one group, in both sessions
    monkeypatch.setenv("HARNESS_TEST_ACCURACY", json.dumps({"syn-mrpc-tiny-roberta-s1": 0.5}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,9")  # the controller hands gw0 GPU 7 and gw1 GPU 9
    args = ["-p", "harness.suite.plugin", "--harness-record-dir", "none", "--harness-baselines", str(tmp_path / "baselines"),
            "--harness-models", ",".join(models), "--harness-tasks", ",".join(tasks), "--harness-seeds", "0,1,2",
            "--harness-threads", "0"]  # leaves torch's threads alone: workers never import torch
    verdicts = {}
    for name, extra in (("serial", []), ("xdist", ["-n", "2"])):
        probe = tmp_path / name
        probe.mkdir()
        monkeypatch.setenv("HARNESS_TEST_PROBE", str(probe))
        result = pytester.runpytest_subprocess(*args, *extra, "--harness-markdown", str(tmp_path / f"{name}.md"))
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # the one regression
        result.assert_outcomes(passed=24, failed=1)
        verdicts[name] = json.loads((tmp_path / f"{name}.json").read_text())["verdicts"]
        tuned = (probe / "fine-tuned.txt").read_text().split()
        assert sorted(tuned) == sorted(set(tuned)) and len(tuned) == 12, (name, tuned)  # each cell once
    assert verdicts["xdist"] == verdicts["serial"]
    assert [v["cell"] for v in verdicts["serial"] if v["verdict"] == "regressed"] == ["syn-mrpc-tiny-roberta"]
    gpus = {p.name: p.read_text() for p in (tmp_path / "xdist").glob("gpu-*.txt")}
    assert gpus == {"gpu-controller.txt": "7,9", "gpu-gw0.txt": "7", "gpu-gw1.txt": "9"}
