"""Checkpoint registry and loader: packaged MiniLM, tiny families, local folders, the hub path up to the network."""

import shutil
from pathlib import Path

import pytest
import torch

from harness.core import models
from harness.errors import ModelLoadError, UnknownNameError
from harness.core.tasks import get_task


@pytest.mark.parametrize("name", models.TINY_MODEL_NAMES)
@pytest.mark.parametrize("task_name", ["mrpc", "stsb", "mnli"])
def test_tiny_families_load_and_run_forward(name: str, task_name: str) -> None:
    task = get_task(task_name)
    loaded = models.load(models.get_model(name), task)
    batch = loaded.tokenizer(["a short one", "a somewhat longer second sentence"],
                             ["its pair", "another pair here"], padding=True, return_tensors="pt")
    loaded.model.eval()
    with torch.no_grad():
        logits = loaded.model(**{k: v for k, v in batch.items() if k != "token_type_ids"
                                 or loaded.model.config.model_type != "distilbert"}).logits
    assert logits.shape == (2, task.num_labels)
    assert loaded.provenance["num_parameters"] < 3_000_000
    assert loaded.provenance["weights_sha256"]


def test_tiny_checkpoint_is_built_once_and_identical() -> None:
    first = models.tiny_checkpoint("bert")
    stamp = (first / "config.json").stat().st_mtime_ns
    assert models.tiny_checkpoint("bert") == first
    assert (first / "config.json").stat().st_mtime_ns == stamp  # not rebuilt


def test_packaged_minilm_is_real_pretrained_and_offline() -> None:
    loaded = models.load(models.get_model("minilm"), get_task("mrpc"))
    assert loaded.provenance["architecture"] == "BertForSequenceClassification"
    assert 20_000_000 < loaded.provenance["num_parameters"] < 25_000_000
    assert loaded.model.config.num_hidden_layers == 6
    assert loaded.model.config.id2label == {0: "not_equivalent", 1: "equivalent"}


def test_regression_head_for_stsb() -> None:
    loaded = models.load(models.get_model("tiny-bert"), get_task("stsb"))
    assert loaded.model.config.num_labels == 1 and loaded.model.config.problem_type == "regression"


def test_load_report_is_printed_once_per_checkpoint(caplog: pytest.LogCaptureFixture) -> None:
    models._reported.discard("tiny-electra")
    models.load(models.get_model("tiny-electra"), get_task("rte"))
    first = caplog.text
    caplog.clear()
    models.load(models.get_model("tiny-electra"), get_task("rte"))
    second = caplog.text
    assert "classifier" in first  # the library's newly-initialized report names the new head
    assert "classifier" not in second
    assert "\x1b[" not in first  # no colour codes: stderr is not a terminal here


def test_unknown_model_suggests() -> None:
    message = str(pytest.raises(UnknownNameError, models.get_model, "tiny-bret").value)
    assert "Did you mean: tiny-bert" in message and "minilm" in message


@pytest.mark.parametrize("name", ["./missing", "/no/such/checkpoint", "~/missing", "runs/a/checkpoint"])
def test_a_path_that_is_not_a_folder_says_so(name: str) -> None:
    message = str(pytest.raises(ModelLoadError, models.get_model, name).value)
    assert message.startswith(f"no such folder: {name}.") and "tiny-bert" in message and "'org/name'" in message


def test_a_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    message = str(pytest.raises(ModelLoadError, models.get_model, str(tmp_path / "model.bin")).value)
    assert "model.bin is a file, not a checkpoint folder" in message


@pytest.mark.parametrize(("name", "limit"), [("tiny-bert", 512), ("tiny-roberta", 513), ("minilm", 512),
                                             ("tiny-deberta-v2", None)])
def test_position_limit_from_config_json(name: str, limit: int | None) -> None:
    assert models.position_limit(models.get_model(name)) == limit


def test_position_limit_of_a_roberta_style_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "roberta", "max_position_embeddings": 514, '
                                          '"pad_token_id": 1}')
    assert models.position_limit(models.get_model(str(tmp_path))) == 512


def test_local_folder_is_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "my-checkpoint"
    shutil.copytree(models.tiny_checkpoint("distilbert"), folder)
    spec = models.get_model(str(folder))
    assert spec.kind == "local"
    loaded = models.load(spec, get_task("sst2"))
    assert loaded.provenance["path"] == str(folder)


def test_broken_local_folder_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        models.load(models.get_model(str(tmp_path / "empty")), get_task("sst2"))


def test_hub_id_while_offline_says_so_and_suggests_local() -> None:
    with pytest.raises(ModelLoadError) as err:
        models.load(models.get_model("bert-base-cased"), get_task("mrpc"))
    message = str(err.value)
    assert "google-bert/bert-base-cased" in message and "HF_HUB_OFFLINE=1" in message
    assert "local checkpoint folder" in message and "minilm" in message


def test_uncached_hub_id_while_offline_is_found_without_loading() -> None:
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1"):
        models.checkpoint_config(models.get_model("roberta-base"))


def test_hub_path_loads_from_the_local_hub_cache_with_its_revision() -> None:
    """The real hub code path, up to the network: a snapshot in the HF cache loads offline."""
    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--harness-test--tiny-bert"
    shutil.copytree(models.tiny_checkpoint("bert"), repo / "snapshots" / revision, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    spec = models.get_model("harness-test/tiny-bert")
    assert spec.kind == "hub"
    loaded = models.load(spec, get_task("mrpc"))
    assert loaded.provenance["revision"] == revision
    assert loaded.provenance["weights_sha256"]
