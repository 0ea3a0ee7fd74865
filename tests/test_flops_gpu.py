"""The GPU paths, on CPU: datasheet peaks by device name and dtype, the peak and the driver as a CUDA run reads them
(only the device query faked), the gpu tier's matrix, and the published references a report shows beside it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from harness.suite import matrix
from harness.machine import env, flops, speed as machine
from harness.data import references
from harness.core.config import PRESETS
from harness.core.record import RunRecord


@pytest.mark.parametrize(("name", "dtype", "tflops", "matched"), [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.5, "H100 SXM"),
    ("NVIDIA H100 80GB HBM3", "fp32", 67.0, "H100 SXM"),
    ("NVIDIA H100 PCIe", "fp16", 756.5, "H100 PCIe"),
    ("NVIDIA H100 NVL", "tf32", 417.5, "H100 NVL"),
    ("NVIDIA H200", "bf16", 989.5, "H200 SXM"),
    ("NVIDIA A100-SXM4-80GB", "tf32", 156.0, "A100"),
    ("NVIDIA A100 80GB PCIe", "bf16", 312.0, "A100"),
    ("NVIDIA L4", "fp16", 121.0, "L4"),
    ("NVIDIA L40S", "bf16", 366.5, "L40S"),
    ("NVIDIA A10G", "bf16", 125.0, "A10G"),
    ("NVIDIA A10", "fp32", 31.2, "A10"),
    ("Tesla T4", "fp16", 65.0, "T4"),
    ("Tesla T4", "tf32", 8.1, "T4"),  # no TF32 units: fp32 products run as fp32
    ("Tesla V100-SXM2-16GB", "fp16", 125.0, "V100 SXM2"),
    ("Tesla V100-PCIE-32GB", "fp32", 14.0, "V100 PCIe"),
])
def test_datasheet_peak_by_device_name_and_dtype(name: str, dtype: str, tflops: float, matched: str) -> None:
    info = flops.gpu_peak_info(name, dtype)
    assert info["matched"] == matched and info["flops_per_second"] == pytest.approx(tflops * 1e12)
    assert info["source"] == "datasheet" and info["note"] is None


def test_no_peak_is_none_with_the_reason() -> None:
    assert flops.gpu_peak_info("NVIDIA GeForce RTX 4090", "bf16")["note"] == \
        "no datasheet peak for 'NVIDIA GeForce RTX 4090'"
    t4 = flops.gpu_peak_info("Tesla T4", "bf16")
    assert t4["flops_per_second"] is None and t4["note"] == "T4 has no bf16 units"
    assert flops.utilisation(1e12, t4["flops_per_second"]) is None
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        flops.gpu_peak("Tesla T4").tflops("fp8")  # type: ignore[union-attr]


def test_every_listed_gpu_has_sane_dense_peaks() -> None:
    for _, peak in flops.GPU_PEAKS:
        assert peak.fp16 > peak.fp32 > 0 and peak.source
        assert peak.bf16 in (None, peak.fp16) and (peak.tf32 is None or peak.fp32 <= peak.tf32 < peak.fp16)


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(
        name=name, total_memory=80 * 2**30, major=9, minor=0))


def test_device_peak_on_cuda_reads_the_datasheet(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _fake_cuda(monkeypatch, "NVIDIA H100 80GB HBM3")
    peak = machine.device_peak("cuda", "bf16", cpu_model="unused", cache_root=tmp_path)
    assert peak["flops_per_second"] == 989.5e12 and peak["device"] == "NVIDIA H100 80GB HBM3"
    assert not (tmp_path / "machine").exists()  # nothing measured on a GPU


@pytest.mark.parametrize(("flags", "expected"), [
    ({"fp32_precision": "tf32"}, True), ({"fp32_precision": "ieee"}, False),
    ({"fp32_precision": "none", "allow_tf32": True}, True), ({"fp32_precision": "none", "allow_tf32": False}, False),
])
def test_tf32_flag(monkeypatch: pytest.MonkeyPatch, flags: dict[str, Any], expected: bool) -> None:
    monkeypatch.setattr(torch.backends.cuda, "matmul", SimpleNamespace(**flags))
    assert machine.tf32_enabled() is expected


BANNER = """+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+"""


def test_cuda_device_info_names_gpu_driver_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, "NVIDIA H100 80GB HBM3")
    env.nvidia_driver.cache_clear()
    monkeypatch.setattr(env.subprocess, "run", lambda *a, **k: SimpleNamespace(stdout=BANNER, returncode=0))
    try:
        info = env.device_info("cuda")
    finally:
        env.nvidia_driver.cache_clear()
    assert info == {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 1, "memory_gib": 80.0,
                    "capability": "9.0", "driver": "550.54.15", "driver_cuda": "12.4"}


def test_driver_unknown_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError("nvidia-smi")

    env.nvidia_driver.cache_clear()
    monkeypatch.setattr(env.subprocess, "run", missing)
    try:
        assert env.nvidia_driver() == {"driver": None, "driver_cuda": None}
    finally:
        env.nvidia_driver.cache_clear()


# ------------------------------------------------------------------------------------------------ the gpu tier

def test_gpu_tier_is_the_nightly_matrix() -> None:
    tier = matrix.get_tier("gpu")
    cells = matrix.cells("gpu")
    assert tier.preset == "nightly" and tier.needs_cuda and tier.precisions == ("fp32", "fp16", "bf16")
    assert {c.config.model for c in cells} == {"bert-base-cased", "roberta-base", "distilbert-base-uncased",
                                               "google-bert/bert-large-cased"}
    assert {c.config.task for c in cells} == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert len({c.id for c in cells}) == len(cells)  # the precision is in the id
    for cell in cells:
        config = cell.config
        assert (config.train_batch_size, config.learning_rate, config.max_length, config.device) == \
            (32, 2e-5, 128, "cuda")
        assert config.epochs == (5.0 if config.task in ("mrpc", "wnli") else 3.0)
        noisy = config.task in ("cola", "rte", "mrpc", "stsb", "wnli")
        assert tier.seeds_for(config.task) == ((0, 1, 2, 3, 4) if noisy else (0,))
    by_precision = {p: [c for c in cells if c.config.precision == p] for p in tier.precisions}
    assert len(by_precision["fp32"]) == len(by_precision["bf16"]) == len(cells) // 3 == 4 * (5 * 5 + 4)
    assert "mrpc-bert-large-cased-bf16-s4" in {c.id for c in cells}
    assert PRESETS["nightly"]["train_batch_size"] == PRESETS["run_glue"]["train_batch_size"] == 32


def test_a_chosen_precision_replaces_the_tiers_axis() -> None:
    chosen = matrix.cells("gpu", matrix.Selection(models=("roberta-base",), tasks=("rte",), seeds=(0,),
                                                  overrides={"precision": "fp16"}))
    assert [c.id for c in chosen] == ["rte-roberta-base-fp16-s0"]


def test_fp32_cell_ids_are_unchanged() -> None:
    assert [c.id for c in matrix.cells("smoke")][:2] == ["syn-mrpc-tiny-bert-s0", "syn-mrpc-tiny-roberta-s0"]


def test_record_group_names_the_precision_as_the_cell_does() -> None:
    config = matrix.cells("gpu", matrix.Selection(models=("bert-base-cased",), tasks=("mrpc",), seeds=(1,),
                                                  overrides={"precision": "bf16"}))[0].config
    record = RunRecord(schema_version=2, run_id="r", cell=config.cell_id, created_at="", status="ok", error=None,
                       config={"model": config.model, "seed": 1, "precision": "bf16"},
                       task={"name": "mrpc", "primary_metric": "accuracy"}, env={}, data={}, model={})
    assert record.group == config.group == "mrpc-bert-base-cased-bf16"


# ------------------------------------------------------------------------------------------------ references

def test_run_glue_references_for_bert_base_cased() -> None:
    mrpc = references.references_for("bert-base-cased", "mrpc")
    assert {k: r.value for k, r in mrpc.items()} == {("validation", "f1"): 0.8885, ("validation", "accuracy"): 0.8407}
    expected = {("cola", "validation", "matthews_correlation"): 0.5653, ("sst2", "validation", "accuracy"): 0.9232,
                ("stsb", "validation", "pearson"): 0.8864, ("stsb", "validation", "spearmanr"): 0.8848,
                ("qqp", "validation", "accuracy"): 0.9071, ("qqp", "validation", "f1"): 0.8749,
                ("mnli", "validation_matched", "accuracy"): 0.8391,
                ("mnli", "validation_mismatched", "accuracy"): 0.8410, ("qnli", "validation", "accuracy"): 0.9066,
                ("rte", "validation", "accuracy"): 0.6570, ("wnli", "validation", "accuracy"): 0.5634}
    for (task, split, metric), value in expected.items():
        found = references.reference("bert-base-cased", task, metric, split)
        assert found is not None and found.value == value and found.precision == "fp32"
        assert "run_glue" in found.source


def test_reference_lookup_by_hub_id_precision_and_variant() -> None:
    fp16 = references.reference("google-bert/bert-base-cased", "cola", "matthews_correlation", precision="fp16")
    assert fp16 is not None and (fp16.value, fp16.precision, fp16.model) == (0.5678, "fp16", "bert-base-cased")
    bf16 = references.reference("bert-base-cased", "rte", "accuracy", precision="bf16")
    assert bf16 is not None and bf16.precision == "fp32"  # nothing published for bf16: the fp32 figure
    matched = references.reference("bert-base-cased", "mnli_matched", "accuracy", "validation_matched")
    assert matched is not None and matched.value == 0.8391
    assert references.reference("roberta-base", "rte", "accuracy") is None
    assert references.reference("bert-base-cased", "mrpc", "matthews_correlation") is None
    assert references.references_for("minilm", "mrpc") == {}
