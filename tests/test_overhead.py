"""`harness overhead`: the interleaving, the summary, and that the plain walkthrough does the harness's work."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness import cli
from harness.overhead import measure as overhead
from harness.core.config import make_config
from harness.core.runner import eval_interval


def test_order_interleaves_so_each_side_runs_first_and_second_equally() -> None:
    sequence = overhead.order(4)
    assert sequence == ["harness", "plain", "plain", "harness"] * 2
    pairs = [sequence[i:i + 2] for i in range(0, len(sequence), 2)]
    assert sum(p[0] == "harness" for p in pairs) == sum(p[0] == "plain" for p in pairs)


def test_summary_ratios_say_how_much_the_harness_costs() -> None:
    harness = overhead.Contender("harness", wall_s=[11.0, 10.0, 12.0], samples_per_second=[98.0, 99.0, 97.0],
                            values=[0.8, 0.8, 0.8])
    plain = overhead.Contender("plain", wall_s=[10.0, 10.0, 10.0], samples_per_second=[100.0, 100.0, 100.0],
                          values=[0.8, 0.8, 0.8])
    summary = overhead.summarize(harness, plain)
    assert summary.speed_ratio == pytest.approx(0.98)
    assert summary.speed_ratios == pytest.approx((0.98, 0.99, 0.97))
    assert summary.wall_ratio == pytest.approx(10 / 11)
    assert summary.same_metric
    assert not overhead.summarize(harness, overhead.Contender("plain", [10.0] * 3, [100.0] * 3, [0.8, 0.7, 0.8])).same_metric
    with pytest.raises(ValueError, match="same number"):
        overhead.summarize(harness, overhead.Contender("plain", [10.0], [100.0], [0.8]))


def test_warmup_and_eval_steps_follow_the_trainer_plan() -> None:
    config = make_config("tiny-bert", "syn-mrpc", preset="run_glue", epochs=1.5, warmup_ratio=0.1,
                         train_batch_size=32, evals_per_epoch=2)
    assert overhead.warmup_steps(config, 100) == 1  # 4 steps per epoch, 6 planned, 0.6 rounded up
    assert eval_interval(config, 100) == 2
    assert eval_interval(make_config("tiny-bert", "syn-mrpc", preset="run_glue"), 100) is None
    assert eval_interval(dataclasses.replace(config, train_batch_size=10), 100) == 5  # 10 steps an epoch
    assert eval_interval(dataclasses.replace(config, train_batch_size=12), 100) == 5  # 9 steps: rounded up


def test_the_plain_walkthrough_reaches_the_harness_metric(tmp_path, capsys) -> None:
    """One round each on a tiny cell: both sides train the same rows with the same settings, so they end with the
    same metric; the command writes its measurements and exits 0."""
    out = tmp_path / "overhead.json"
    code = cli.main(["overhead", "--model", "tiny-bert", "--task", "syn-mrpc", "--max-train-samples", "96",
                     "--max-eval-samples", "64", "--rounds", "1", "--threads", "1", "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    measured = json.loads(out.read_text())
    assert measured["summary"]["same_metric"], printed
    assert measured["harness"]["values"] == measured["plain"]["values"]
    assert all(v > 0 for side in ("harness", "plain") for v in measured[side]["samples_per_second"])
    assert set(measured["fixed_costs"]) == {"imports", "data", "model_load", "tokenize_cold", "tokenize_cached"}
    assert "ratio" in printed and "equal on both sides" in printed
