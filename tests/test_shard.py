"""Sharding: I/N parsing, a deterministic split covering every cell once with task x model groups kept whole,
balance from the committed baselines' seconds (else the cost model), the pytest option and `harness run --shard`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.suite import matrix, options, sharding
from harness.cli import build_parser, main
from harness.commands import run as run_command
from harness.core.config import make_config
from harness.errors import HarnessError
from harness.suite.sharding import Shard

import harness.core.runner  # noqa: F401  (torch, numpy: imported before pytester's module snapshots)
import harness.suite.plugin  # noqa: F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "results" / "baselines"


@pytest.mark.parametrize(("text", "expected"), [
    ("0/2", "I must be from 1 to 2 (shards are numbered from 1)"),
    ("3/2", "I must be from 1 to 2"),
    ("x", "expected I/N"),
    ("1/0", "N must be at least 1"),
    ("-1/2", "expected I/N"),
    ("1.5/2", "expected I/N"),
])
def test_bad_shards_are_refused_with_what_is_allowed(text: str, expected: str) -> None:
    with pytest.raises(HarnessError, match="shard") as caught:
        sharding.parse_shard(text)
    assert expected in str(caught.value) and "whole numbers 1 <= I <= N" in str(caught.value)
    with pytest.raises(argparse.ArgumentTypeError, match="expected I/N"):
        options.shard(text)


def test_good_shards_parse() -> None:
    assert sharding.parse_shard("2/3") == Shard(2, 3) and str(sharding.parse_shard(" 1/1 ")) == "1/1"


def test_harness_run_refuses_a_bad_shard_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--shard", "3/2"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-2]  # argparse: the error line, then the --help pointer
    assert "argument --shard: shard '3/2': I must be from 1 to 2" in last


def _glue_dir(root: Path) -> Path:
    for folder in ("CoLA", "SST-2", "MRPC", "STS-B", "RTE", "WNLI"):
        (root / folder).mkdir(parents=True)
        for split in ("train", "dev"):
            (root / folder / f"{split}.tsv").write_text("x\n")
    return root


@pytest.mark.parametrize("count", [1, 2, 3, 5, 40])
def test_every_cell_is_in_exactly_one_shard_and_groups_stay_whole(count: int, tmp_path: Path) -> None:
    selection = matrix.Selection(glue_dir=str(_glue_dir(tmp_path / "glue")))
    cells = [c for tier in ("smoke", "glue") for c in matrix.cells(tier, selection)]
    shards = [sharding.shard_configs(cells, Shard(i, count), COMMITTED, ("smoke", "glue"),
                                     unit=lambda c: f"{c.tier}/{c.group}", config=lambda c: c.config)
              for i in range(1, count + 1)]
    ids = [(c.tier, c.id) for shard in shards for c in shard]
    assert sorted(ids) == sorted((c.tier, c.id) for c in cells)  # all of them, none twice
    owners = {(c.tier, c.group): i for i, shard in enumerate(shards) for c in shard}
    assert all(owners[(c.tier, c.group)] == i for i, shard in enumerate(shards) for c in shard)  # seeds together
    for shard in shards:  # the matrix's order is kept within a shard
        assert shard == [c for c in cells if c in shard]
    again = sharding.shard_configs(cells, Shard(1, count), COMMITTED, ("smoke", "glue"),
                                   unit=lambda c: f"{c.tier}/{c.group}", config=lambda c: c.config)
    assert again == shards[0]  # deterministic


def test_lpt_balances_within_the_largest_unit() -> None:
    costs = {"a": 7.0, "b": 5.0, "c": 4.0, "d": 3.0, "e": 3.0, "f": 2.0}
    owner = sharding.assign(costs, 2)
    loads = [sum(c for u, c in costs.items() if owner[u] == s) for s in (1, 2)]
    assert sorted(loads) == [12.0, 12.0]
    assert sharding.assign(costs, 2) == owner and set(sharding.assign(costs, 9).values()) <= set(range(1, 10))


def _baseline(root: Path, tier: str, config, seconds: float) -> None:
    import dataclasses

    path = root / tier / "any" / f"{config.cell_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"schema_version": 2, "run_id": "0" * 32, "cell": config.cell_id, "created_at": "2026-01-01T00:00:00Z",
              "status": "ok", "error": None, "config": dataclasses.asdict(config), "task": {"primary_metric": "accuracy"},
              "env": {}, "data": {}, "model": {}, "metrics": {"validation": {"accuracy": 0.9}},
              "timings": {"train_wall_s": seconds}}
    path.write_text(json.dumps({"schema_version": 1, "kind": "quality", "tier": tier, "cell": config.cell_id,
                                "record": record}))


def test_costs_come_from_baseline_seconds_scaled_to_the_config(tmp_path: Path) -> None:
    slow, fast = make_config("tiny-bert", "syn-mrpc"), make_config("tiny-bert", "syn-sst2")
    _baseline(tmp_path, "smoke", slow, 100.0)
    _baseline(tmp_path, "smoke", fast, 10.0)
    known = sharding.baseline_seconds(tmp_path, ["smoke"])
    assert sharding.cell_costs([slow, fast], known) == pytest.approx([100.0, 10.0])
    half = make_config("tiny-bert", "syn-mrpc", max_train_samples=2048)  # half the baseline's 4096 examples
    cost = sharding.cell_costs([half], known)[0]
    assert 50.0 < cost < 100.0  # training halves, evaluation does not
    # a cell without a baseline is priced by the cost model at the known cells' seconds per unit
    other = make_config("tiny-roberta", "syn-stsb")
    priced = sharding.cell_costs([slow, fast, other], known)[2]
    rates = sorted([100.0 / sharding.work_units(slow), 10.0 / sharding.work_units(fast)])
    assert priced == pytest.approx(sharding.work_units(other) * sum(rates) / 2)
    # and the split follows the seconds: the 100 s group alone against everything else
    configs = [slow, fast, make_config("tiny-roberta", "syn-sst2")]
    assert sharding.shard_configs(configs, Shard(1, 2), tmp_path, ["smoke"]) == [slow]


def test_cost_model_without_baselines_prices_models_and_sample_budgets() -> None:
    same = {"max_train_samples": 1024, "epochs": 2.0}
    tiny, minilm = make_config("tiny-bert", "syn-sst2", **same), make_config("minilm", "syn-sst2", **same)
    assert sharding.work_units(minilm) == pytest.approx(30 * sharding.work_units(tiny))  # per example
    assert sharding.work_units(make_config("tiny-bert", "syn-sst2", **same, max_eval_samples=64)) \
        < sharding.work_units(tiny) < sharding.work_units(make_config("tiny-bert", "syn-sst2", max_train_samples=1024))
    full_qqp = make_config("minilm", "qqp", glue_dir="/nowhere", preset="run_glue")
    assert sharding.work_units(full_qqp) > 100 * sharding.work_units(make_config("minilm", "wnli", preset="run_glue",
                                                                                 glue_dir="/nowhere"))
    assert sharding.baseline_seconds(Path("/nonexistent"), ["smoke"]) == {}


def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_harness_run_shards_split_the_plan() -> None:
    argv = ("--tasks", "syn-sst2,syn-stsb", "--models", "tiny-bert,tiny-roberta,minilm", "--seeds", "0,1")
    full = run_command.plan(_run_args(*argv))
    parts = [run_command.sharded(full, _run_args(*argv, "--shard", f"{i}/2")) for i in (1, 2)]
    assert sorted(c.cell_id for p in parts for c in p) == sorted(c.cell_id for c in full)
    assert all(parts)
    assert {c.group for c in parts[0]}.isdisjoint({c.group for c in parts[1]})


def test_an_empty_shard_says_so_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--models", "tiny-bert", "--tasks", "syn-sst2", "--shard", "2/2", "--output", str(tmp_path)])
    assert code == 0
    assert "shard 2/2 has no cells" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_pytest_shards_collect_disjoint_cells_covering_the_tier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_copy_smoke=(REPO / "suites" / "test_smoke.py").read_text())
    base = ["-p", "harness.suite.plugin", "--harness-record-dir", "none", "--harness-baselines", str(COMMITTED),
            "--collect-only", "-q", "--harness-seeds", "0,1"]

    def collected(*extra: str) -> list[str]:
        result = pytester.runpytest_inprocess(*base, *extra)
        return [line.split("[")[1].rstrip("]") for line in result.stdout.lines if "::test_quality[" in line]

    full = collected()
    parts = [collected("--harness-shard", f"{i}/2") for i in (1, 2)]
    assert len(full) == 12 and sorted(parts[0] + parts[1]) == sorted(full)
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    groups = [{cell.rsplit("-s", 1)[0] for cell in part} for part in parts]
    assert not groups[0] & groups[1]  # both seeds of a group on one shard
    bad = pytester.runpytest_inprocess(*base, "--harness-shard", "0/2")
    assert bad.ret != 0 and "shard '0/2': I must be from 1 to 2" in "\n".join(bad.errlines)
