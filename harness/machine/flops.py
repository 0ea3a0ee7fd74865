"""Model FLOPs of fine-tuning an encoder classifier, datasheet peaks of GPUs, and model FLOPs utilisation (MFU).

Pure: no torch import. Counted per sequence of n non-padding tokens, at 2 FLOPs per multiply-add, matrix products
only (as torch.utils.flop_counter counts). h = hidden size, f = intermediate size, L = layers, c = labels,
e = token embedding width:

    layer(n)   = 2n(4h² + 2hf)       Q, K, V and output projections; the feed-forward up and down projections
               + 4n²h                QKᵀ and attention × V over the sequence's own n tokens (all heads together)
               + 4nkh per term       DeBERTa-v2 only: c2p and p2c scores against 2k relative positions
    forward(n) = L·layer(n)
               + 2neh                only where the embeddings are narrower than h (ALBERT, ELECTRA): their projection
               + 2h² + 2hc           the head, on the first token only: pooler / pre-classifier dense, then classifier
    per batch  = L·4kh² per projected relative-position table (DeBERTa-v2: 2k rows, once per forward pass)

    training   = 3 × Σᵢ forward(nᵢ)  the backward pass costs twice the forward (gradients of inputs and of weights)

Embedding lookups, layer norms, softmax, activations, dropout, bias adds and the optimizer step are not matrix
products and are left out (well under 1 % of a BERT-base layer at n = 128), as is the work spent on padding:
attention is counted as Σ nᵢ², not as batch × longest². So MFU here is *model* FLOPs utilisation: useful work over
the peak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

FORMULA_VERSION = 1  # bump when the count changes: records of different versions do not compare
DTYPES = ("fp32", "tf32", "fp16", "bf16")


@dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count needs from a model config."""

    layers: int
    hidden: int
    intermediate: int
    labels: int
    embedding: int  # token embedding width; == hidden unless the embeddings are factorised
    relative_span: int = 0  # DeBERTa-v2: k, relative positions cover 2k rows; 0 without relative attention
    relative_terms: int = 0  # DeBERTa-v2: how many of c2p, p2c are computed
    relative_tables: int = 0  # DeBERTa-v2: relative-position tables projected per forward pass

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape:
        """From a transformers config (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT, DeBERTa-v2 and alike)."""
        hidden = int(config.hidden_size)  # DistilBERT maps hidden_size -> dim
        intermediate = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
        if intermediate is None:
            raise ValueError(f"{type(config).__name__} has neither intermediate_size nor hidden_dim")
        span = terms = tables = 0
        if getattr(config, "relative_attention", False):
            buckets = int(getattr(config, "position_buckets", -1) or -1)
            most = int(getattr(config, "max_relative_positions", -1) or -1)
            span = buckets if buckets > 0 else most if most > 0 else int(config.max_position_embeddings)
            kinds = [t for t in (getattr(config, "pos_att_type", None) or ()) if t in ("c2p", "p2c")]
            terms = len(kinds)
            tables = 2 if getattr(config, "share_att_key", False) else terms  # shared keys project both tables
        return cls(layers=int(config.num_hidden_layers), hidden=hidden, intermediate=int(intermediate),
                   labels=int(config.num_labels), embedding=int(getattr(config, "embedding_size", None) or hidden),
                   relative_span=span, relative_terms=terms, relative_tables=tables)


def forward_flops(shape: EncoderShape, length: int) -> int:
    """Forward FLOPs of one sequence of `length` tokens, without the per-batch terms."""
    n, h = length, shape.hidden
    layer = 2 * n * (4 * h * h + 2 * h * shape.intermediate) + 4 * n * n * h
    layer += shape.relative_terms * 4 * n * shape.relative_span * h
    projection = 2 * n * shape.embedding * h if shape.embedding != h else 0
    head = 2 * h * h + 2 * h * shape.labels
    return shape.layers * layer + projection + head


def batch_flops(shape: EncoderShape) -> int:
    """Forward FLOPs paid once per forward pass whatever its sequences (DeBERTa-v2's relative-position tables)."""
    return shape.layers * shape.relative_tables * 4 * shape.relative_span * shape.hidden ** 2


def dataset_forward_flops(shape: EncoderShape, lengths: Iterable[int], batches: int) -> int:
    """Forward FLOPs of one pass over sequences of these lengths in `batches` forward passes."""
    count = total = squares = 0
    for n in lengths:
        count, total, squares = count + 1, total + n, squares + n * n
    h = shape.hidden
    linear = shape.layers * 2 * (4 * h * h + 2 * h * shape.intermediate) * total
    attention = shape.layers * (4 * h * squares + shape.relative_terms * 4 * shape.relative_span * h * total)
    projection = 2 * shape.embedding * h * total if shape.embedding != h else 0
    head = (2 * h * h + 2 * h * shape.labels) * count
    return linear + attention + projection + head + batches * batch_flops(shape)


def training_flops(shape: EncoderShape, lengths: Iterable[int], batches: int) -> int:
    """Forward + backward FLOPs of one training epoch over sequences of these lengths: 3 × forward."""
    return 3 * dataset_forward_flops(shape, lengths, batches)


def utilisation(flops_per_second: float | None, peak_per_device: float | None, devices: int = 1) -> float | None:
    """Achieved over peak FLOP/s (the peak of `devices` devices together); None when either is unknown."""
    if not flops_per_second or not peak_per_device or devices < 1:
        return None
    return flops_per_second / (peak_per_device * devices)


# ------------------------------------------------------------------------------------------------ compute dtype

_PARAM_DTYPES = MappingProxyType({"float16": "fp16", "bfloat16": "bf16"})


def compute_dtype(precision: str, parameter_dtype: str | None, tf32: bool) -> str:
    """The dtype matrix products run in: the autocast precision, else the parameters' (a model loaded in half
    precision), else fp32, or tf32 where fp32 products are allowed to use TF32 tensor cores."""
    if precision in ("fp16", "bf16"):
        return precision
    half = _PARAM_DTYPES.get(str(parameter_dtype).removeprefix("torch."))
    return half or ("tf32" if tf32 else "fp32")


# ---------------------------------------------------------------------------------------- GPU datasheet peaks

@dataclass(frozen=True)
class GpuPeak:
    """Dense (no structured sparsity) peak TFLOP/s per dtype from the vendor's datasheet; None: no such unit."""

    name: str
    fp32: float
    tf32: float | None
    fp16: float
    bf16: float | None
    source: str

    def tflops(self, dtype: str) -> float | None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
        if dtype == "tf32" and self.tf32 is None:
            return self.fp32  # no TF32 units: fp32 products run as fp32
        return getattr(self, dtype)


# Datasheets quote tensor-core figures with 2:4 sparsity (marked *); the dense figure is half of it.
_SHEET = "NVIDIA {} datasheet, dense"
GPU_PEAKS: tuple[tuple[str, GpuPeak], ...] = (
    # (pattern matched against torch.cuda.get_device_name(), peak); the first match wins
    (r"H200.*NVL", GpuPeak("H200 NVL", 60.0, 417.5, 835.5, 835.5, _SHEET.format("H200"))),
    (r"H200", GpuPeak("H200 SXM", 67.0, 494.5, 989.5, 989.5, _SHEET.format("H200"))),
    (r"H100.*NVL", GpuPeak("H100 NVL", 60.0, 417.5, 835.5, 835.5, _SHEET.format("H100"))),
    (r"H100.*PCIe", GpuPeak("H100 PCIe", 51.0, 378.0, 756.5, 756.5, _SHEET.format("H100"))),
    (r"H100", GpuPeak("H100 SXM", 67.0, 494.5, 989.5, 989.5, _SHEET.format("H100"))),
    (r"A100", GpuPeak("A100", 19.5, 156.0, 312.0, 312.0, _SHEET.format("A100"))),
    (r"L40S", GpuPeak("L40S", 91.6, 183.0, 366.5, 366.5, _SHEET.format("L40S"))),
    (r"\bL40\b", GpuPeak("L40", 90.5, 90.5, 181.0, 181.0, _SHEET.format("L40"))),
    (r"\bL4\b", GpuPeak("L4", 30.3, 60.0, 121.0, 121.0, _SHEET.format("L4"))),
    (r"\bA40\b", GpuPeak("A40", 37.4, 74.8, 149.7, 149.7, _SHEET.format("A40"))),
    # AWS's A10G has no datasheet of its own; it is a GA102 like the A10, whose figures are used
    (r"\bA10G\b", GpuPeak("A10G", 31.2, 62.5, 125.0, 125.0, "NVIDIA A10 datasheet (A10G: none published), dense")),
    (r"\bA10\b", GpuPeak("A10", 31.2, 62.5, 125.0, 125.0, _SHEET.format("A10"))),
    (r"\bT4\b", GpuPeak("T4", 8.1, None, 65.0, None, _SHEET.format("T4"))),
    (r"V100S", GpuPeak("V100S PCIe", 16.4, None, 130.0, None, _SHEET.format("V100S"))),
    (r"V100.*PCIE", GpuPeak("V100 PCIe", 14.0, None, 112.0, None, _SHEET.format("V100"))),
    (r"V100", GpuPeak("V100 SXM2", 15.7, None, 125.0, None, _SHEET.format("V100"))),
)


def gpu_peak(device_name: str) -> GpuPeak | None:
    """The datasheet entry for a CUDA device name, e.g. "NVIDIA H100 80GB HBM3" -> H100 SXM; None if unlisted."""
    for pattern, peak in GPU_PEAKS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None


def gpu_peak_info(device_name: str, dtype: str) -> dict[str, Any]:
    """The record's peak entry for a GPU: FLOP/s per device, or None with the reason."""
    peak = gpu_peak(device_name)
    tflops = peak.tflops(dtype) if peak else None
    note = None if tflops else (f"no datasheet peak for {device_name!r}" if peak is None
                                else f"{peak.name} has no {dtype} units")
    return {"source": "datasheet", "device": device_name, "matched": peak.name if peak else None, "dtype": dtype,
            "flops_per_second": tflops * 1e12 if tflops else None, "reference": peak.source if peak else None,
            "note": note}


def summary(model_config: Any, lengths: Iterable[int], *, batch_size: int, epochs: float, steps_done: int,
            steps_planned: int, seconds: float, peak: Mapping[str, Any], dtype: str,
            devices: int = 1) -> dict[str, Any]:
    """The record's `model_flops` entry of one training run (counts None, with a note, for a config the formula
    cannot read, e.g. a decoder without intermediate_size).

    The run covers `epochs` passes over the sequences, of which `steps_done` of `steps_planned` optimizer steps
    ran in this process (fewer after a resume) and took `seconds`. `devices` ranks share the work (DDP).
    """
    try:
        shape = EncoderShape.from_config(model_config)
    except (AttributeError, TypeError, ValueError) as err:
        return {"formula_version": FORMULA_VERSION, "dtype": dtype, "devices": devices, "per_epoch": None,
                "train": None, "per_second": None, "mfu": None, "note": f"not counted: {err}"}
    lengths = list(lengths)
    batches = -(-len(lengths) // max(batch_size * devices, 1)) * devices
    per_epoch = training_flops(shape, lengths, batches)
    share = steps_done / steps_planned if steps_planned else 0.0
    trained = per_epoch * epochs * share
    per_second = trained / seconds if seconds > 0 and trained else None
    return {"formula_version": FORMULA_VERSION, "dtype": dtype, "devices": devices, "per_epoch": per_epoch,
            "train": round(trained), "per_second": per_second,
            "mfu": utilisation(per_second, peak.get("flops_per_second"), devices), "note": peak.get("note")}
