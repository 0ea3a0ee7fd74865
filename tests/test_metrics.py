"""harness.data.metrics against scikit-learn / scipy, plus validation, the Trainer adapter and the evaluate module."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from harness.data import metrics
from harness.errors import HarnessError
from harness.data.tasks import TASKS, TaskSpec

# Example counts and deadlines come from the hypothesis profiles in the root conftest.py (dev/ci/nightly).
Pair = tuple[list[int], list[int]]
FloatPair = tuple[list[float], list[float]]


def _same(ours: float, reference: float) -> bool:
    """Equal to 1e-9 relative (1e-12 absolute near zero); nan matches only nan."""
    if math.isnan(reference):
        return math.isnan(ours)
    return math.isclose(ours, reference, rel_tol=1e-9, abs_tol=1e-12)


@st.composite
def label_pairs(draw: st.DrawFn, max_classes: int = 4) -> Pair:
    """(predictions, references) of equal length >= 1 with class ids in range(max_classes)."""
    n = draw(st.integers(1, 60))
    labels = st.lists(st.integers(0, max_classes - 1), min_size=n, max_size=n)
    return draw(labels), draw(labels)


@st.composite
def score_pairs(draw: st.DrawFn, min_size: int = 2) -> FloatPair:
    """Scores on a 1/8 grid: exactly representable, with plenty of ties."""
    n = draw(st.integers(min_size, 60))
    scores = st.lists(st.integers(-1000, 1000).map(lambda v: v / 8), min_size=n, max_size=n)
    return draw(scores), draw(scores)


# ---------------------------------------------------------------- references (sklearn / scipy), quiet on purpose


def _sklearn(fn: Callable[..., float], preds: list[int], refs: list[int], **kwargs: object) -> float:
    with warnings.catch_warnings():  # degenerate inputs are the point of these tests
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(fn(refs, preds, **kwargs))


def _scipy(fn: Callable[..., object], preds: list[float], refs: list[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        return float(fn(preds, refs).statistic)  # type: ignore[attr-defined]


CLASSIFICATION_EXAMPLES = (
    ([0, 0, 0, 0], [1, 0, 1, 1]),  # constant predictions
    ([1, 0, 1], [1, 1, 1]),  # one class only in references
    ([0, 0], [0, 0]),  # no positives anywhere
    ([0, 1, 1, 0], [0, 1, 1, 0]),  # all correct
    ([1, 0, 0], [0, 1, 1]),  # all wrong
    ([0], [0]),  # length 1
    ([1], [0]),
)


def _with_examples(test: Callable[..., None]) -> Callable[..., None]:
    for preds, refs in CLASSIFICATION_EXAMPLES:
        test = example(pair=(preds, refs))(test)
    return test


@given(pair=label_pairs())
@_with_examples
def test_accuracy_matches_sklearn(pair: Pair) -> None:
    preds, refs = pair
    assert _same(metrics.accuracy(predictions=preds, references=refs), _sklearn(accuracy_score, preds, refs))


@given(pair=label_pairs(max_classes=2))
@_with_examples
def test_f1_matches_sklearn(pair: Pair) -> None:
    preds, refs = pair
    expected = _sklearn(f1_score, preds, refs, zero_division=0)
    assert _same(metrics.f1(predictions=preds, references=refs), expected)


@given(pair=label_pairs())
@_with_examples
def test_matthews_matches_sklearn(pair: Pair) -> None:
    preds, refs = pair
    expected = _sklearn(matthews_corrcoef, preds, refs)
    assert _same(metrics.matthews_correlation(predictions=preds, references=refs), expected)


def test_f1_positive_label() -> None:
    preds, refs = [0, 0, 1, 0], [0, 1, 1, 0]
    expected = _sklearn(f1_score, preds, refs, pos_label=0)
    assert _same(metrics.f1(predictions=preds, references=refs, positive_label=0), expected)


SCORE_EXAMPLES = (
    ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]),  # constant predictions -> nan
    ([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]),  # constant references -> nan
    ([4.0, 4.0], [4.0, 4.0]),  # both constant -> nan
    ([1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.0, 2.0]),  # ties on both sides
    ([1.0, 2.0], [2.0, 1.0]),  # length 2, perfectly anti-correlated
    ([0.0, 1.0, 5.0], [0.0, 1.0, 5.0]),  # identical
)


@pytest.mark.parametrize(("ours", "theirs"), [(metrics.pearson, stats.pearsonr),
                                              (metrics.spearmanr, stats.spearmanr)], ids=["pearson", "spearmanr"])
@given(pair=score_pairs())
@example(pair=SCORE_EXAMPLES[0])
@example(pair=SCORE_EXAMPLES[1])
@example(pair=SCORE_EXAMPLES[2])
@example(pair=SCORE_EXAMPLES[3])
@example(pair=SCORE_EXAMPLES[4])
@example(pair=SCORE_EXAMPLES[5])
def test_correlations_match_scipy(ours: Callable[..., float], theirs: Callable[..., object], pair: FloatPair) -> None:
    preds, refs = pair
    assert _same(ours(predictions=preds, references=refs), _scipy(theirs, preds, refs))


@pytest.mark.parametrize("fn", [metrics.pearson, metrics.spearmanr], ids=["pearson", "spearmanr"])
def test_correlations_nan_on_length_one_and_nonfinite(fn: Callable[..., float]) -> None:
    # scipy.stats.pearsonr refuses n < 2 and spearmanr returns nan; both are undefined, so nan.
    assert math.isnan(fn(predictions=[1.0], references=[2.0]))
    assert math.isnan(fn(predictions=[1.0, math.nan, 3.0], references=[1.0, 2.0, 3.0]))


def test_metric_functions_return_plain_floats() -> None:
    for name, fn in metrics.METRIC_FUNCTIONS.items():
        value = fn(predictions=np.array([0, 1, 1]), references=np.array([0, 1, 0]))
        assert type(value) is float, name


# ---------------------------------------------------------------- compute


def _valid_inputs(task: TaskSpec, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if task.is_regression:
        return rng.uniform(0, 5, n), rng.uniform(0, 5, n)
    return rng.integers(0, task.num_labels, n), rng.integers(0, task.num_labels, n)


@pytest.mark.parametrize("task", TASKS.values(), ids=list(TASKS))
def test_compute_returns_exactly_task_metrics(task: TaskSpec) -> None:
    preds, refs = _valid_inputs(task)
    result = metrics.compute(task, predictions=preds, references=refs)
    assert tuple(result) == task.metrics
    assert all(type(v) is float and math.isfinite(v) for v in result.values())
    for name in task.metrics:
        if name != "combined_score":
            assert result[name] == metrics.METRIC_FUNCTIONS[name](predictions=preds, references=refs)
    if "combined_score" in result:
        others = [v for k, v in result.items() if k != "combined_score"]
        assert result["combined_score"] == pytest.approx(sum(others) / len(others), rel=1e-12)


def test_compute_accepts_lists_and_integral_floats() -> None:
    task = TASKS["mrpc"]
    expected = metrics.compute(task, predictions=[0, 1, 1], references=[0, 1, 0])
    assert metrics.compute(task, predictions=np.array([0.0, 1.0, 1.0]), references=[0, 1, 0]) == expected


@pytest.mark.parametrize(("task_name", "preds", "refs", "needles"), [
    ("mrpc", [0, 1, 1], [0, 1, 1, 0], ("predictions has 3 rows but references has 4", "one prediction per example")),
    ("mrpc", [], [], ("empty", "at least one example")),
    ("mrpc", np.zeros((2, 2)), [0, 1], ("1-D", "(2, 2)", "logits_to_predictions")),
    ("mrpc", [0, 2], [0, 1], ("predictions contains label 2", "range(0, 2)", "num_labels=2")),
    ("mnli", [0, 1], [0, -100], ("references contains label -100", "range(0, 3)", "label2id")),
    ("sst2", [0.2, 0.9], [0, 1], ("integer class ids", "not scores or probabilities")),
    ("sst2", [math.nan, 1.0], [0, 1], ("integer class ids",)),
    ("sst2", [1e30, 1.0], [0, 1], ("outside range(0, 2)",)),  # range-checked before the int cast
    ("sst2", ["a", "b"], [0, 1], ("must hold numbers", "<U1")),
    ("stsb", [[1.0], [2.0]], [1.0, 2.0], ("1-D", "(2, 1)")),
    ("stsb", [1.0, 2.0], [[1.0, 2.0]], ("references must be 1-D", "(1, 2)")),
    ("stsb", [1.0, 2.0], [[1.0, 2.0], [3.0]], ("could not be read as an array",)),
])
def test_compute_rejects_bad_inputs(task_name: str, preds: object, refs: object, needles: tuple[str, ...]) -> None:
    with pytest.raises(HarnessError) as info:
        metrics.compute(TASKS[task_name], predictions=preds, references=refs)  # type: ignore[arg-type]
    assert type(info.value) is HarnessError
    for needle in needles:
        assert needle in str(info.value)


def test_metric_functions_validate_too() -> None:
    with pytest.raises(HarnessError, match="2 rows but references has 3"):
        metrics.accuracy(predictions=[0, 1], references=[0, 1, 1])


# ---------------------------------------------------------------- logits and the Trainer adapter


def test_logits_to_predictions() -> None:
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 0.5]], dtype=np.float32)
    assert metrics.logits_to_predictions(TASKS["mrpc"], logits).tolist() == [1, 0, 1]
    scores = np.array([[1.5], [3.0]], dtype=np.float32)
    assert metrics.logits_to_predictions(TASKS["stsb"], scores).tolist() == [1.5, 3.0]


@pytest.mark.parametrize(("task_name", "shape", "needle"), [
    ("mrpc", (4, 3), "num_labels=2"),
    ("mrpc", (4,), "(n, 2)"),
    ("mnli", (2, 4, 3), "(n, 3)"),
    ("stsb", (4, 2), "num_labels=1"),
])
def test_logits_to_predictions_rejects_wrong_shapes(task_name: str, shape: tuple[int, ...], needle: str) -> None:
    with pytest.raises(HarnessError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        metrics.logits_to_predictions(TASKS[task_name], np.zeros(shape))


def test_trainer_metrics_classification() -> None:
    from transformers import EvalPrediction

    task, rng = TASKS["mrpc"], np.random.default_rng(1)
    logits = rng.normal(size=(32, 2)).astype(np.float32)
    labels = rng.integers(0, 2, 32)
    expected = metrics.compute(task, predictions=logits.argmax(-1), references=labels)
    compute_metrics = metrics.trainer_metrics(task)
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)) == expected
    hidden = rng.normal(size=(32, 5, 4))  # models may return (logits, hidden_states, ...)
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == expected


def test_trainer_metrics_regression() -> None:
    from transformers import EvalPrediction

    task, rng = TASKS["stsb"], np.random.default_rng(2)
    logits = rng.uniform(0, 5, size=(32, 1)).astype(np.float32)
    labels = rng.uniform(0, 5, size=32).astype(np.float32)
    result = metrics.trainer_metrics(task)(EvalPrediction(predictions=logits, label_ids=labels))
    assert result == metrics.compute(task, predictions=logits[:, 0], references=labels)
    assert result["pearson"] == pytest.approx(_scipy(stats.pearsonr, logits[:, 0], labels), rel=1e-6)


def test_trainer_metrics_without_labels() -> None:
    from transformers import EvalPrediction

    compute_metrics = metrics.trainer_metrics(TASKS["sst2"])
    with pytest.raises(HarnessError, match="no labels"):
        compute_metrics(EvalPrediction(predictions=np.zeros((2, 2)), label_ids=None))  # type: ignore[arg-type]


def test_import_stays_light() -> None:
    heavy = ("evaluate", "datasets", "transformers", "torch", "sklearn", "scipy")
    code = f"import sys, harness.data.metrics; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- evaluate module


def _is_dynamic_module(name: str) -> bool:
    return name == "evaluate_modules" or name.startswith("evaluate_modules.")


@pytest.fixture
def offline_evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """evaluate confined to tmp_path and offline, even if it was imported earlier with other settings."""
    for var, sub in {"HF_HOME": "", "HF_EVALUATE_CACHE": "evaluate", "HF_DATASETS_CACHE": "datasets",
                     "HF_MODULES_CACHE": "modules", "HF_METRICS_CACHE": "metrics"}.items():
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        monkeypatch.setenv(var, "1")
    import evaluate.config

    # evaluate reads those variables once, at import: patch the values it already holds too.
    for attr, sub in {"HF_CACHE_HOME": "", "HF_EVALUATE_CACHE": "evaluate", "HF_MODULES_CACHE": "modules",
                      "HF_METRICS_CACHE": "metrics"}.items():
        monkeypatch.setattr(evaluate.config, attr, tmp_path / sub)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    # Its copied modules import as the top-level package `evaluate_modules`, bound to the first cache dir
    # imported: hide any earlier one (and the sys.path entry evaluate appends) for the test's duration.
    monkeypatch.setattr(sys, "path", [*sys.path])
    saved = {name: sys.modules.pop(name) for name in [m for m in sys.modules if _is_dynamic_module(m)]}
    yield tmp_path
    for name in [m for m in sys.modules if _is_dynamic_module(m)]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.mark.parametrize("task_name", ["mrpc", "stsb"])
def test_evaluate_module_matches_compute(offline_evaluate: Path, task_name: str) -> None:
    task = TASKS[task_name]
    module = metrics.load_evaluate_metric(task)
    assert Path(inspect.getfile(type(module))).is_relative_to(offline_evaluate / "modules")
    assert module.features["predictions"].dtype == ("float32" if task.is_regression else "int64")
    preds, refs = _valid_inputs(task, n=50)
    if task.is_regression:  # the module declares float32 features, as GLUE's own does
        preds, refs = preds.astype(np.float32), refs.astype(np.float32)
    expected = metrics.compute(task, predictions=preds, references=refs)
    result = module.compute(predictions=preds, references=refs)
    assert list(result) == list(expected)
    assert result == pytest.approx(expected, rel=1e-9)


def test_evaluate_module_rejects_unknown_config(offline_evaluate: Path) -> None:
    import evaluate

    with pytest.raises(HarnessError, match="config_name"):
        evaluate.load(str(metrics.EVALUATE_MODULE_DIR), config_name="nope")
