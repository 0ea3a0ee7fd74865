"""Checkpoint registry and loader: packaged MiniLM, tiny families, local folders, the hub path up to the network."""

import shutil
from pathlib import Path

import pytest
import torch

from harness.core import models
from harness.errors import ModelLoadError, UnknownNameError
from harness.data.tasks import get_task


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


def test_a_new_task_head_is_recorded_not_printed(capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    loaded = models.load(models.get_model("tiny-electra"), get_task("rte"))
    fresh = loaded.provenance["fresh_weights"]
    assert fresh["head"] and all(key.startswith("classifier.") for key in fresh["head"]) and fresh["body"] == []
    assert capsys.readouterr().err == ""
    assert "LOAD REPORT" not in caplog.text and "Some weights" not in caplog.text  # 5.x's table, 4.x's warning


def test_a_body_missing_from_the_checkpoint_is_warned_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file, save_file

    loaded = models.load(models.get_model("tiny-bert"), get_task("sst2"))
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    lost = sorted(key for key in weights if ".layer.0.attention.self.query." in key)
    save_file({k: v for k, v in weights.items() if k not in lost}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    capsys.readouterr()
    models._reported.discard(str(tmp_path))
    spec = models.get_model(str(tmp_path))
    fresh = models.load(spec, get_task("sst2")).provenance["fresh_weights"]
    assert [key.removeprefix("bert.") for key in fresh["body"]] == [key.removeprefix("bert.") for key in lost]
    warned = capsys.readouterr().err
    assert f"{len(lost)} weight(s) of the model body are not in the checkpoint" in warned
    models.load(spec, get_task("sst2"))
    assert capsys.readouterr().err == ""  # once per checkpoint and process


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
    (tmp_path / "model.safetensors").write_bytes(b"")
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
