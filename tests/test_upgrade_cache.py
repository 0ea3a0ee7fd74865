"""Each side's upgrade-check results kept between checks: what the key is made of, what is never cached, and a
second check that reuses them with the same verdicts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.upgrade import cache, sides
from harness.upgrade.venvs import Venv

THIS_VENV = sys.prefix


def _side(patch: str | None = None, packages: tuple[str, ...] = ("torch==2.13.0 ab",),
          editable: tuple[str, ...] = ()) -> sides.Side:
    return sides.Side(sides.SideSpec("from", patch=patch), Venv((), Path(sys.prefix)), {"python": "3.11.7"},
                      packages=packages, editable=editable)


def test_the_key_changes_with_packages_source_and_machine() -> None:
    key, why = cache.side_key(_side(), "src", "cpu x2")
    assert key and not why
    assert cache.side_key(_side(), "src", "cpu x2")[0] == key  # the same side again: the same key
    others = [cache.side_key(_side(packages=("torch==2.13.0 cd",)), "src", "cpu x2")[0],  # another file digest
              cache.side_key(_side(), "src2", "cpu x2")[0], cache.side_key(_side(), "src", "other cpu x2")[0]]
    assert key not in others and len(set(others)) == 3


@pytest.mark.parametrize("side, reason", [(_side(patch="fix:apply"), "patched by fix:apply"),
                                          (_side(editable=("transformers",)), "editable install of transformers")])
def test_a_patched_or_editable_side_is_never_cached(side: sides.Side, reason: str) -> None:
    key, why = cache.side_key(side, "src", "cpu")
    assert key is None and reason in why
    disabled = cache.Cache(key)
    disabled.keep("suite", {}, {"x": 1}, 1.0)
    assert disabled.find("suite", {}) is None


def test_kept_results_come_back_with_their_files_and_a_damaged_entry_is_made_again(tmp_path: Path) -> None:
    store = cache.Cache("k", root=tmp_path)
    records = tmp_path / "made" / "runs"
    records.mkdir(parents=True)
    (records / "r.json").write_text("{}")
    store.keep("runs", {"cells": [1]}, None, 12.5, files={"records": records})
    hit = store.find("runs", {"cells": [1]})
    assert hit is not None and hit.seconds == 12.5 and (hit.folder / "records" / "r.json").is_file()
    assert store.find("runs", {"cells": [2]}) is None  # other settings: another entry
    tiny = cache.venvs.venv_root().parent / "tiny" / "test-only-family"
    tiny.mkdir(parents=True, exist_ok=True)
    try:
        (tiny / "model.safetensors").write_bytes(b"weights built by one version")
        store.keep("runs", {"cells": [3]}, None, 1.0)
        assert store.find("runs", {"cells": [3]}) is not None
        (tiny / "model.safetensors").write_bytes(b"weights built by another")  # the tiny cache rebuilt meanwhile
        assert store.find("runs", {"cells": [3]}) is None
    finally:
        shutil.rmtree(tiny)
    (hit.folder / "result.json").write_text("{not json")
    assert store.find("runs", {"cells": [1]}) is None


def test_the_source_digest_follows_the_harness_files(tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "a.py").write_text("x = 1\n")
    before = cache.source_digest(tmp_path)
    (tmp_path / "harness" / "__pycache__").mkdir()
    (tmp_path / "harness" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert cache.source_digest(tmp_path) == before  # bytecode is not source
    (tmp_path / "harness" / "a.py").write_text("x = 2\n")
    assert cache.source_digest(tmp_path) != before


def _check(out: Path, *extra: str) -> dict:
    code = main(["upgrade-check", "--from", THIS_VENV, "--to", THIS_VENV, "--models", "tiny-bert", "--tasks",
                 "syn-sst2", "--stages", "preflight,trajectory,quality", "--output", str(out), *extra])
    assert code == 0
    return json.loads((out / "upgrade-check.json").read_text())


def test_a_second_check_reuses_each_side_and_says_so(tmp_path: Path) -> None:
    first = _check(tmp_path / "first")
    again = _check(tmp_path / "again")
    fresh = _check(tmp_path / "fresh", "--no-cache")
    assert all("cache" not in v for s in first["sections"] for v in s["sources"].values())
    assert all(v.startswith("cache (") for s in again["sections"] for v in s["sources"].values())
    assert all("cache" not in v for s in fresh["sections"] for v in s["sources"].values())
    assert "--no-cache: every result was made in this check" in fresh["cache_notes"]
    rows = [[(s["stage"], s["status"], s["rows"]) for s in r["sections"]] for r in (first, again, fresh)]
    assert rows[0] == rows[1] == rows[2]  # the same trajectories (bit-identical) and the same verdicts
    markdown = (tmp_path / "again" / "upgrade-check.md").read_text()
    assert "#### Stage times" in markdown and "result(s) from the cache" in markdown


def test_with_the_old_side_cached_the_new_side_trains_on_two_workers_with_the_same_numbers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noop = tmp_path / "noop.py"
    noop.write_text("def apply():\n    pass\n")
    cells = ("--tasks", "syn-sst2,syn-mrpc", "--epochs", "1")
    first = main(["upgrade-check", "--from", THIS_VENV, "--to", THIS_VENV, "--models", "tiny-bert", *cells,
                  "--stages", "trajectory,quality", "--output", str(tmp_path / "first")])
    patched = main(["upgrade-check", "--from", THIS_VENV, "--to", THIS_VENV, "--models", "tiny-bert", *cells,
                    "--stages", "trajectory,quality", "--patch-to", f"{noop}:apply", "--output",
                    str(tmp_path / "split")])  # a patched side is never cached: it trains, its old side does not
    assert first == patched == 0
    assert "(second worker, at" in capsys.readouterr().out
    made = [json.loads((tmp_path / name / "upgrade-check.json").read_text()) for name in ("first", "split")]
    assert [s["rows"] for s in made[0]["sections"]] == [s["rows"] for s in made[1]["sections"]]
    assert all(s["sources"]["from"].startswith("cache (") for s in made[1]["sections"])
