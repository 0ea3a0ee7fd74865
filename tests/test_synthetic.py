"""Built-in tasks: deterministic, GLUE-shaped, balanced, and not solvable from one sentence alone."""

import collections

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from harness.data.synthetic import generate
from harness.data.tasks import BUILTIN_TASK_NAMES, get_task


@pytest.mark.parametrize("name", BUILTIN_TASK_NAMES)
def test_generation_is_deterministic_and_glue_shaped(name: str) -> None:
    spec = get_task(name)
    first, second = generate(spec, "train"), generate(spec, "train")
    assert first == second
    assert set(first) == {*spec.text_keys, "label", "idx"}
    assert first["idx"] == list(range(spec.sizes["train"]))
    assert generate(spec, "validation") != generate(spec, "train")
    assert set(generate(spec, "test")["label"]) == {-1}  # unlabeled, as on the hub


@pytest.mark.parametrize("name", ["syn-mrpc", "syn-sst2"])
def test_classes_are_balanced(name: str) -> None:
    counts = collections.Counter(generate(get_task(name), "train")["label"])
    assert set(counts) == {0, 1}
    assert min(counts.values()) / sum(counts.values()) > 0.45


def test_similarity_scores_span_the_sts_range() -> None:
    scores = generate(get_task("syn-stsb"), "train")["label"]
    assert set(scores) == {0.0, 1.25, 2.5, 3.75, 5.0}


def _bag_of_words_accuracy(train: list[str], train_y: list, test: list[str], test_y: list) -> float:
    vectorizer = CountVectorizer(ngram_range=(1, 2))
    model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(train), train_y)
    return float(np.mean(model.predict(vectorizer.transform(test)) == np.asarray(test_y)))


def test_paraphrase_needs_both_sentences() -> None:
    """Either sentence alone gives chance; the label is a relation between the two."""
    spec = get_task("syn-mrpc")
    train, dev = generate(spec, "train"), generate(spec, "validation")
    for key in spec.text_keys:
        assert _bag_of_words_accuracy(train[key], train["label"], dev[key], dev["label"]) < 0.6


def test_sentiment_is_not_solved_by_ignoring_negation() -> None:
    """Counting polar words without reading 'not' is clearly below what the task allows."""
    from harness.data.synthetic import NEGATIVE, POSITIVE

    dev = generate(get_task("syn-sst2"), "validation")
    naive = [int(sum(w in POSITIVE for w in s.split()) > sum(w in NEGATIVE for w in s.split()))
             for s in dev["sentence"]]
    assert np.mean(np.asarray(naive) == np.asarray(dev["label"])) < 0.8
