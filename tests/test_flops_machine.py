"""MFU on CPU: the matmul peak measured once and cached per CPU model, threads and dtype; every record and the
`harness run` table carry it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.commands.run import render_table
from harness.machine import flops, speed as machine
from harness.core import runner
from harness.core.config import make_config
from harness.core.models import cache_root
from harness.core.record import RunRecord


def test_measured_matmul_rate_is_positive_and_restores_threads() -> None:
    before = torch.get_num_threads()
    rate = machine.measure_matmul_flops("fp32", 1, size=64, rounds=2, round_seconds=0.002)
    assert rate > 1e8 and torch.get_num_threads() == before  # any CPU multiplies 64^2 blocks faster than 0.1 GFLOP/s


class FakeMeasure:
    """Rates and other processes' CPU use handed out in turn, instead of timing the machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, runs: list[tuple[float, float | None]]) -> None:
        self.runs, self.calls = list(runs), []
        monkeypatch.setattr(machine, "measure_matmul_flops", self.measure)
        monkeypatch.setattr(machine.MachineLoad, "stop", lambda load: self.busy)
        self.busy: float | None = None

    def measure(self, dtype: str, threads: int) -> float:
        self.calls.append((dtype, threads))
        rate, self.busy = self.runs.pop(0)
        return rate


def test_peak_is_measured_once_per_cpu_threads_and_dtype(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeMeasure(monkeypatch, [(2e11, 0.0), (4e11, 0.1), (1e11, 0.0)])
    first = machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)
    assert first["flops_per_second"] == 2e11 and first["source"] == "measured" and first["threads"] == 2
    assert machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)["flops_per_second"] == 2e11  # cached
    assert machine.cpu_peak("EPYC", 2, "bf16", cache_root=tmp_path)["flops_per_second"] == 4e11
    assert machine.cpu_peak("EPYC", 1, "fp32", cache_root=tmp_path)["flops_per_second"] == 1e11
    assert fake.calls == [("fp32", 2), ("bf16", 2), ("fp32", 1)]
    stored = json.loads(machine.peak_cache_path(tmp_path).read_text())
    assert set(stored["peaks"]) == {"EPYC|2t|fp32", "EPYC|2t|bf16", "EPYC|1t|fp32"}


def test_a_peak_measured_on_a_busy_machine_is_retaken_keeping_the_best(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    fake = FakeMeasure(monkeypatch, [(5e10, 1.5), (3e10, 1.2), (2e11, 0.05), (9e11, 0.0)])
    assert machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)["flops_per_second"] == 5e10  # busy: provisional
    assert machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)["flops_per_second"] == 5e10  # lower: kept best
    quiet = machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)
    assert quiet["flops_per_second"] == 2e11 and quiet["busy_cores"] == 0.05
    assert machine.cpu_peak("EPYC", 2, "fp32", cache_root=tmp_path)["flops_per_second"] == 2e11  # final
    assert len(fake.calls) == 3


def test_an_unreadable_cache_is_measured_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeMeasure(monkeypatch, [(1e11, 0.0)])
    path = machine.peak_cache_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert machine.cpu_peak("EPYC", 1, "fp32", cache_root=tmp_path)["flops_per_second"] == 1e11
    assert json.loads(path.read_text())["schema_version"] == machine.PEAK_CACHE_VERSION


@pytest.fixture(scope="module")
def record() -> RunRecord:
    return runner.run(make_config("tiny-bert", "syn-sst2", epochs=1.0, max_train_samples=128, max_eval_samples=64))


def test_every_record_carries_model_flops_and_the_cpu_peak(record: RunRecord) -> None:
    peak = record.timings["machine"]["peak"]
    assert peak["source"] == "measured" and peak["dtype"] == "fp32" and peak["flops_per_second"] > 0
    assert peak["threads"] == torch.get_num_threads() and peak["device"] == record.env["cpu"]["model"]
    cached = json.loads(machine.peak_cache_path(cache_root()).read_text())["peaks"]
    assert cached[machine.peak_key(peak["device"], peak["threads"], "fp32")]["flops_per_second"] == \
        peak["flops_per_second"]
    counted = record.timings["model_flops"]
    assert counted["formula_version"] == flops.FORMULA_VERSION and counted["dtype"] == "fp32"
    # tiny-bert: 2 layers, h 64, f 128, 2 labels; N sequences of T non-padding tokens in all, each at most 64 long.
    # Linear layers and head are exact from T and N; attention's sum of squared lengths lies in [T^2/N, 64 T].
    n, t = record.data["rows"]["train"], record.data["tokens"]["train"]
    linear = 3 * (2 * 2 * (4 * 64**2 + 2 * 64 * 128) * t + (2 * 64**2 + 2 * 64 * 2) * n)
    assert linear + 3 * 2 * 4 * 64 * t * t / n <= counted["per_epoch"] <= linear + 3 * 2 * 4 * 64 * t * 64
    assert counted["train"] == counted["per_epoch"]  # one epoch, every step run here
    # the record stores step seconds rounded to the microsecond; the FLOP rate used the unrounded sum
    assert counted["per_second"] == pytest.approx(counted["train"] / sum(record.step_seconds), rel=1e-4)
    assert record.mfu is not None and record.mfu > 0
    assert record.mfu == pytest.approx(counted["per_second"] / peak["flops_per_second"])


def test_run_table_shows_mfu(record: RunRecord) -> None:
    table = render_table([record]).splitlines()
    header = table[0].split()
    assert "mfu_%" in header
    shown = float(table[1].split()[header.index("mfu_%")])
    assert shown == pytest.approx(100 * record.mfu, abs=0.06)


def test_old_records_without_mfu_show_a_dash(record: RunRecord) -> None:
    old: dict[str, Any] = record.to_dict()
    del old["timings"]["model_flops"]
    table = render_table([RunRecord.from_dict(old)]).splitlines()
    assert table[1].split()[table[0].split().index("mfu_%")] == "-"
