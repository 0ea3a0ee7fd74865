"""Task registry: the nine GLUE tasks as the hub defines them, built-in tasks, did-you-mean errors."""

import pytest

from harness.errors import TaskFileError, UnknownNameError
from harness.data.tasks import BUILTIN_TASK_NAMES, GLUE_TASK_NAMES, TASKS, TsvLayout, get_task


def test_all_nine_glue_tasks_are_registered() -> None:
    assert set(GLUE_TASK_NAMES) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}


@pytest.mark.parametrize(("name", "num_labels", "primary", "text_keys"), [
    ("cola", 2, "matthews_correlation", ("sentence",)),
    ("sst2", 2, "accuracy", ("sentence",)),
    ("mrpc", 2, "accuracy", ("sentence1", "sentence2")),
    ("stsb", 1, "pearson", ("sentence1", "sentence2")),
    ("qqp", 2, "accuracy", ("question1", "question2")),
    ("mnli", 3, "accuracy", ("premise", "hypothesis")),
    ("qnli", 2, "accuracy", ("question", "sentence")),
    ("rte", 2, "accuracy", ("sentence1", "sentence2")),
    ("wnli", 2, "accuracy", ("sentence1", "sentence2")),
])
def test_glue_specs_match_the_hub_schema(name: str, num_labels: int, primary: str, text_keys: tuple) -> None:
    spec = get_task(name)
    assert spec.num_labels == num_labels
    assert spec.primary_metric == primary and primary in spec.metrics
    assert spec.text_keys == text_keys
    assert spec.hub_path == "nyu-mll/glue" and spec.hub_config == name
    assert spec.higher_is_better


def test_label_ids_follow_the_hub() -> None:
    assert get_task("rte").label2id == {"entailment": 0, "not_entailment": 1}
    assert get_task("wnli").label2id == {"not_entailment": 0, "entailment": 1}
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")
    assert get_task("stsb").is_regression and get_task("stsb").label_names == ()


def test_glue_specs_carry_their_tsv_layout() -> None:
    cola = get_task("cola")
    assert cola.tsv == TsvLayout("CoLA", ("sentence",), "label", headerless=("source", "label", "label_mark",
                                                                               "sentence"))
    assert cola.glue_dir_name == "CoLA" and cola.user is None
    assert get_task("mrpc").tsv == TsvLayout("MRPC", ("#1 String", "#2 String"), "Quality")
    assert get_task("mnli_mismatched").tsv == get_task("mnli").tsv  # variants keep the files
    for name in GLUE_TASK_NAMES:
        spec = get_task(name)
        assert spec.tsv is not None and len(spec.tsv.text) == len(spec.text_keys)
    assert all(get_task(n).tsv is None and get_task(n).glue_dir_name is None for n in BUILTIN_TASK_NAMES)


def test_mnli_evaluates_matched_and_mismatched_and_variants_override_only_splits() -> None:
    mnli = get_task("mnli")
    assert mnli.eval_splits == ("validation_matched", "validation_mismatched")
    matched = get_task("mnli_matched")
    assert matched.eval_splits == ("validation_matched",)
    assert (matched.label_names, matched.text_keys, matched.metrics) == (mnli.label_names, mnli.text_keys,
                                                                         mnli.metrics)


def test_builtin_tasks_cover_pair_single_and_regression() -> None:
    specs = [get_task(n) for n in BUILTIN_TASK_NAMES]
    assert {(s.is_pair, s.is_regression) for s in specs} >= {(True, False), (False, False), (True, True)}
    for spec in specs:
        assert spec.benchmark == "builtin" and spec.hub_path is None
        assert set(spec.sizes) == set(spec.splits)


def test_lookup_is_case_insensitive_and_accepts_glue_folder_spellings() -> None:
    assert get_task("MRPC") is TASKS["mrpc"]
    assert get_task("SST-2") is TASKS["sst2"]
    assert get_task("STS-B") is TASKS["stsb"]


def test_unknown_task_suggests_and_lists() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_task("mrcp")
    message = str(err.value)
    assert "Unknown task 'mrcp'" in message
    assert "Did you mean: mrpc" in message
    assert "Available: cola," in message and "wnli" in message


def test_unknown_task_without_close_match_still_lists() -> None:
    message = str(pytest.raises(UnknownNameError, get_task, "zzzzzz").value)
    assert "Did you mean" not in message and "Available:" in message


def test_a_task_file_path_is_read_not_looked_up(tmp_path) -> None:
    with pytest.raises(TaskFileError, match="does not exist"):
        get_task(str(tmp_path / "mine.yaml"))
    with pytest.raises(UnknownNameError):
        get_task("mine.json")  # not a task-file ending: an unknown name


def test_a_glue_or_builtin_task_states_the_size_of_every_split_it_reads() -> None:
    """Sharding prices a cell by its rows: a task without them would be priced silently by a guess."""
    import dataclasses

    for spec in (get_task("rte"), get_task("mnli_mismatched"), get_task("syn-sst2")):
        assert all(spec.sizes[s] > 0 for s in (spec.train_split, *spec.eval_splits))
        with pytest.raises(ValueError, match="sizes must give the rows of every split"):
            dataclasses.replace(spec, sizes={})
