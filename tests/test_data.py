"""harness.data.loading: one schema from hub / local GLUE TSVs / built-in generator; seeded subsets; actionable errors."""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from pathlib import Path

import datasets
import pytest

from harness.data import loading as data
from harness.data.loading import TaskData, load_task, resolve_source
from harness.errors import DataError
from harness.data.tasks import TsvLayout, get_task

REPO = Path(__file__).resolve().parents[1]
REAL_GLUE = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue")
needs_real = pytest.mark.skipif(not (REAL_GLUE / "MRPC").is_dir(),
                                reason=f"real GLUE TSVs not found at {REAL_GLUE} (set GLUE_DIR to the glue_data dir)")

# Official row counts (train, dev, test), as listed in shared/glue/SOURCES.md. QNLI train is absent there.
OFFICIAL = {"cola": (8551, 1043, 1063), "sst2": (67349, 872, 1821), "mrpc": (3668, 408, 1725),
            "stsb": (5749, 1500, 1379), "qnli": (None, 5463, 5463), "rte": (2490, 277, 3000),
            "wnli": (635, 71, 146)}


@pytest.fixture(autouse=True)
def _offline_hf(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: no network, caches in a temp dir, no GLUE_DIR unless a test sets one."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("GLUE_DIR", raising=False)


_REAL_CACHE: dict[str, TaskData] = {}


def real(task: str) -> TaskData:
    """All splits present in the real files, loaded once per session."""
    if task not in _REAL_CACHE:
        spec = get_task(task)
        splits = [s for s in spec.splits if not (task == "qnli" and s == "train")]
        _REAL_CACHE[task] = load_task(spec, source="local", glue_dir=REAL_GLUE, splits=splits)
    return _REAL_CACHE[task]


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def label_counts(td: TaskData, split: str) -> dict[str, int]:
    names = td.splits[split].features["label"].names
    return {names[k]: v for k, v in collections.Counter(td.splits[split]["label"]).items()}


# ------------------------------------------------------------------------------------------- real GLUE files

@needs_real
@pytest.mark.parametrize("task", sorted(OFFICIAL))
def test_real_row_counts_match_official(task: str) -> None:
    td = real(task)
    for split, expected in zip(("train", "validation", "test"), OFFICIAL[task]):
        if expected is not None:
            assert td.splits[split].num_rows == expected, (task, split)
            assert td.splits[split]["idx"] == list(range(expected))
    assert set(td.splits["test"]["label"]) == {-1}  # unlabeled, as on the hub
    assert td.splits["train" if task != "qnli" else "validation"].features == data.features_for(td.spec)


@needs_real
def test_real_mrpc_bom_and_labels() -> None:
    td = real("mrpc")
    train = td.splits["train"]
    assert train.column_names == ["sentence1", "sentence2", "label", "idx"]
    assert train[0] == {"sentence1": 'Amrozi accused his brother , whom he called " the witness " , of deliberately '
                                     "distorting his evidence .",
                        "sentence2": 'Referring to him as only " the witness " , Amrozi accused his brother of '
                                     "deliberately distorting his evidence .",
                        "label": 1, "idx": 0}
    assert label_counts(td, "validation") == {"equivalent": 279, "not_equivalent": 129}
    assert label_counts(td, "train") == {"equivalent": 2474, "not_equivalent": 1194}
    files = td.provenance["files"]
    assert files["MRPC/train.tsv"] == {"sha256": "69abcedee3cf738c6ce58d772e43e1b7cdf5b4edee4aceda459c0d9f4e5599f3",
                                       "bytes": 941471, "rows": 3668}


@needs_real
def test_real_cola_headerless() -> None:
    td = real("cola")
    assert td.splits["train"][0]["sentence"] == ("Our friends won't buy this analysis, let alone the next one we "
                                                 "propose.")
    assert label_counts(td, "validation") == {"acceptable": 721, "unacceptable": 322}
    assert td.splits["test"][0]["sentence"] == "Bill whistled past the house."  # test file has a header


@needs_real
def test_real_string_and_integer_labels() -> None:
    assert label_counts(real("rte"), "validation") == {"entailment": 146, "not_entailment": 131}
    assert real("rte").splits["validation"].features["label"].names == ["entailment", "not_entailment"]
    assert sum(1 for x in real("rte").splits["validation"]["label"] if x == 0) == 146  # entailment = 0, as on hub
    assert label_counts(real("qnli"), "validation") == {"entailment": 2702, "not_entailment": 2761}
    assert label_counts(real("wnli"), "validation") == {"not_entailment": 40, "entailment": 31}  # ints 0/1
    assert label_counts(real("sst2"), "validation") == {"negative": 428, "positive": 444}


@needs_real
def test_real_text_kept_verbatim() -> None:
    # SST-2 train/dev sentences all end in a space (the hub keeps it); MRPC fields open quotes they never close.
    assert real("sst2").splits["validation"][0]["sentence"] == "it 's a charming and often affecting journey . "
    assert real("mrpc").splits["validation"][0]["sentence2"] == ('" The foodservice pie business does not fit our '
                                                                 "long-term growth strategy .")


@needs_real
def test_real_stsb_float_scores() -> None:
    dev = real("stsb").splits["validation"]
    assert dev.features["label"] == datasets.Value("float32")
    scores = dev["label"]
    assert min(scores) >= 0 and max(scores) <= 5 and round(sum(scores) / len(scores), 3) == 2.364
    assert dev[0]["sentence1"] == "A man with a hard hat is dancing." and dev[0]["label"] == 5.0
    assert set(real("stsb").splits["test"]["label"]) == {-1.0}


@needs_real
def test_real_qnli_train_absent_names_path() -> None:
    with pytest.raises(DataError, match="QNLI/train.tsv, which does not exist") as err:
        load_task(get_task("qnli"), source="local", glue_dir=REAL_GLUE)
    assert str(REAL_GLUE / "QNLI" / "train.tsv") in str(err.value) and "dev.tsv, test.tsv" in str(err.value)


# ------------------------------------------------------------------------------------------- small TSVs

RTE_TSV = ('index\tsentence1\tsentence2\tlabel\n'
           '0\tHe said " hello .\tA "quoted\tentailment\n'
           '1\t"Open quote never closed\tB\t1\n'
           '2\tplain\t" \tnot_entailment\n')


def test_unbalanced_quotes_survive(tmp_path: Path) -> None:
    write(tmp_path, "RTE/dev.tsv", RTE_TSV)
    dev = load_task(get_task("rte"), glue_dir=tmp_path, splits=["validation"]).splits["validation"]
    assert dev["sentence1"] == ['He said " hello .', '"Open quote never closed', "plain"]
    assert dev["sentence2"] == ['A "quoted', "B", '" ']  # nothing stripped, nothing merged
    assert dev["label"] == [0, 1, 1] and dev["idx"] == [0, 1, 2]  # names and ids both accepted


def test_bom_header_and_column_order(tmp_path: Path) -> None:
    # Columns are found by name, so a reordered header still maps right; the BOM must not hide 'Quality'.
    write(tmp_path, "MRPC/dev.tsv", "\ufeff#2 String\tQuality\t#1 ID\t#2 ID\t#1 String\nB .\t0\t1\t2\tA .\n")
    dev = load_task(get_task("mrpc"), glue_dir=tmp_path, splits=["validation"]).splits["validation"]
    assert dev[0] == {"sentence1": "A .", "sentence2": "B .", "label": 0, "idx": 0}


def test_tsv_layout_comes_from_the_spec(tmp_path: Path) -> None:
    write(tmp_path, "Mine/dev.tsv", "gold\thyp\tprem\nnot_entailment\tB\tA\n")
    spec = dataclasses.replace(get_task("rte"), tsv=TsvLayout("Mine", ("prem", "hyp"), "gold"))
    td = load_task(spec, glue_dir=tmp_path, splits=["validation"])
    assert td.splits["validation"][0] == {"sentence1": "A", "sentence2": "B", "label": 1, "idx": 0}
    assert td.provenance["layout"] == "Mine" and list(td.provenance["files"]) == ["Mine/dev.tsv"]


def test_headerless_cola(tmp_path: Path) -> None:
    write(tmp_path, "CoLA/train.tsv", "gj04\t1\t\tFirst one.\ngj04\t0\t*\tSecond \" one.")  # no final newline
    train = load_task(get_task("cola"), glue_dir=tmp_path, splits=["train"]).splits["train"]
    assert train["sentence"] == ["First one.", 'Second " one.'] and train["label"] == [1, 0]


@pytest.mark.parametrize("bad, line", [("3\tonly two\n", 5), ("\n", 5), ("3\ta\tb\tc\textra\n", 5)])
def test_wrong_field_count_names_file_and_line(tmp_path: Path, bad: str, line: int) -> None:
    path = write(tmp_path, "RTE/dev.tsv", RTE_TSV + bad + "4\tx\ty\tentailment\n")
    with pytest.raises(DataError, match=f"line {line}: expected 4 tab-separated fields") as err:
        load_task(get_task("rte"), glue_dir=tmp_path, splits=["validation"])
    assert str(path) in str(err.value)


def test_unknown_label_lists_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "RTE/dev.tsv", RTE_TSV + "3\ta\tb\tneutral\n")
    with pytest.raises(DataError) as err:
        load_task(get_task("rte"), glue_dir=tmp_path, splits=["validation"])
    msg = str(err.value)
    assert str(path) in msg and "line 5" in msg and "'neutral'" in msg
    assert "0 or 'entailment', 1 or 'not_entailment'" in msg


def test_bad_regression_score(tmp_path: Path) -> None:
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    write(tmp_path, "STS-B/dev.tsv", header + "0\tg\tf\ty\t0\tn\tn\tA\tB\t4.5\n1\tg\tf\ty\t1\tn\tn\tA\tB\tn/a\n")
    with pytest.raises(DataError, match=r"line 3: label 'n/a'.*finite number"):
        load_task(get_task("stsb"), glue_dir=tmp_path, splits=["validation"])


def test_missing_column_and_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "RTE/dev.tsv", "index\tsentence1\tsentence2\tgold\n0\ta\tb\tentailment\n")
    with pytest.raises(DataError, match=r"header lacks column\(s\) \['label'\]"):
        load_task(get_task("rte"), glue_dir=tmp_path, splits=["validation"])
    write(tmp_path, "RTE/train.tsv", "")
    with pytest.raises(DataError, match="is empty"):
        load_task(get_task("rte"), glue_dir=tmp_path, splits=["train"])


def test_missing_dir_folder_and_file(tmp_path: Path) -> None:
    rte = get_task("rte")
    with pytest.raises(DataError, match="does not exist") as err:
        load_task(rte, glue_dir=tmp_path / "nope")
    assert "GLUE_DIR/RTE/{train,dev,test}.tsv" in str(err.value)
    write(tmp_path, "SST-2/dev.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(DataError, match=r"Task folder .*RTE is missing.*GLUE_DIR/RTE/\{train,dev,test\}\.tsv.*SST-2"):
        load_task(rte, glue_dir=tmp_path)
    mnli = get_task("mnli")
    write(tmp_path, "MNLI/train.tsv", "")
    with pytest.raises(DataError, match="dev_matched.tsv, which does not exist") as err:
        load_task(mnli, glue_dir=tmp_path, splits=["validation_matched"])
    assert "GLUE_DIR/MNLI/{train,dev_matched,dev_mismatched,test_matched,test_mismatched}.tsv" in str(err.value)
    with pytest.raises(DataError, match="no split"):
        load_task(rte, glue_dir=tmp_path, splits=["validation_matched"])


def test_test_split_unlabeled(tmp_path: Path) -> None:
    write(tmp_path, "STS-B/test.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                                      "sentence2\n0\tg\tf\ty\t0\tn\tn\tA\tB\n")
    test = load_task(get_task("stsb"), glue_dir=tmp_path, splits=["test"]).splits["test"]
    assert test[0] == {"sentence1": "A", "sentence2": "B", "label": -1.0, "idx": 0}


# ------------------------------------------------------------------------------------------- builtin

@pytest.mark.parametrize("builtin, glue, tsv", [
    ("syn-mrpc", "mrpc", ("MRPC/train.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA\tB\n")),
    ("syn-sst2", "sst2", ("SST-2/train.tsv", "sentence\tlabel\ngood\t1\n")),
    ("syn-stsb", "stsb", ("STS-B/train.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
                                             "sentence1\tsentence2\tscore\n0\tg\tf\ty\t0\tn\tn\tA\tB\t1.5\n")),
])
def test_builtin_schema_matches_local(tmp_path: Path, builtin: str, glue: str, tsv: tuple[str, str]) -> None:
    write(tmp_path, *tsv)
    local = load_task(get_task(glue), glue_dir=tmp_path, splits=["train"]).splits["train"].features
    syn = load_task(get_task(builtin), splits=["train", "validation", "test"])
    feats = syn.splits["train"].features
    assert list(feats.values()) == list(local.values())  # same types in the same order; text key names may differ
    assert syn.provenance["source"] == "builtin" and syn.splits["train"].num_rows == get_task(builtin).sizes["train"]
    assert set(syn.splits["test"]["label"]) == {-1}


# ------------------------------------------------------------------------------------------- subsets & fingerprint

def test_subsets_deterministic_sorted_and_sized() -> None:
    spec = get_task("syn-sst2")
    a = load_task(spec, max_train_samples=100, max_eval_samples=50, subset_seed=1)
    b = load_task(spec, max_train_samples=100, max_eval_samples=50, subset_seed=1)
    c = load_task(spec, max_train_samples=100, max_eval_samples=50, subset_seed=2)
    idx = a.splits["train"]["idx"]
    assert (len(idx), a.splits["validation"].num_rows) == (100, 50)
    assert idx == sorted(idx) and len(set(idx)) == 100
    assert idx == b.splits["train"]["idx"] and a.fingerprint == b.fingerprint and a.provenance == b.provenance
    assert idx != c.splits["train"]["idx"] and a.fingerprint != c.fingerprint
    sub = a.provenance["subset"]
    assert sub["splits"]["train"]["rows"] == 100 and sub["splits"]["train"]["of"] == spec.sizes["train"]
    whole = load_task(spec, max_train_samples=5000)
    assert whole.splits["train"]["idx"] == list(range(spec.sizes["train"]))
    assert whole.fingerprint != load_task(spec).fingerprint  # params are part of the key even when a no-op


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "10"])
def test_subset_sizes_validated(bad: object) -> None:
    with pytest.raises(DataError, match="max_train_samples must be a positive integer"):
        load_task(get_task("syn-sst2"), max_train_samples=bad)  # type: ignore[arg-type]


def test_fingerprint_tracks_file_contents_not_location(tmp_path: Path) -> None:
    write(tmp_path / "a", "RTE/dev.tsv", RTE_TSV)
    write(tmp_path / "b", "RTE/dev.tsv", RTE_TSV)
    rte = get_task("rte")
    fa = load_task(rte, glue_dir=tmp_path / "a", splits=["validation"])
    assert fa.fingerprint == load_task(rte, glue_dir=tmp_path / "b", splits=["validation"]).fingerprint
    changed = write(tmp_path / "b", "RTE/dev.tsv", RTE_TSV.replace("plain", "Plain"))
    os.utime(changed, ns=(1, 1))  # new (size, mtime) key even on coarse clocks
    fb = load_task(rte, glue_dir=tmp_path / "b", splits=["validation"])
    assert fb.fingerprint != fa.fingerprint
    assert fb.provenance["files"]["RTE/dev.tsv"]["sha256"] != fa.provenance["files"]["RTE/dev.tsv"]["sha256"]
    assert load_task(rte, glue_dir=tmp_path / "a", splits=["validation"], max_eval_samples=2).fingerprint != \
        fa.fingerprint


# ------------------------------------------------------------------------------------------- resolve_source

def test_resolve_source_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mrpc = get_task("mrpc")
    assert resolve_source(mrpc) == ("hub", None)
    monkeypatch.setenv("GLUE_DIR", str(tmp_path / "env"))
    assert resolve_source(mrpc) == ("local", tmp_path / "env")
    assert resolve_source(mrpc, glue_dir=tmp_path / "arg") == ("local", tmp_path / "arg")  # argument beats env
    assert resolve_source(mrpc, "hub") == ("hub", None)  # explicit source beats GLUE_DIR
    monkeypatch.delenv("GLUE_DIR")
    with pytest.raises(DataError, match="--glue-dir DIR or set GLUE_DIR"):
        resolve_source(mrpc, "local")
    with pytest.raises(DataError, match="Allowed: hub, local, builtin"):
        resolve_source(mrpc, "s3")
    with pytest.raises(DataError, match="only serves the built-in tasks"):
        resolve_source(mrpc, "builtin")


def test_resolve_source_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syn = get_task("syn-mrpc")
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    assert resolve_source(syn) == ("builtin", None) == resolve_source(syn, "builtin")
    for source in ("hub", "local"):
        with pytest.raises(DataError, match="is built-in"):
            resolve_source(syn, source)


# ------------------------------------------------------------------------------------------- hub

def test_hub_offline_fails_fast_with_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even if datasets was imported while online, the env at call time must make it fail fast (no retries).
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_task(get_task("mrpc"), source="hub")
    assert time.perf_counter() - start < 5
    msg = str(err.value)
    for part in ("nyu-mll/glue", "not in the local datasets cache", "offline", "--glue-dir DIR", "GLUE_DIR=DIR",
                 "GLUE_DIR/MRPC/{train,dev,test}.tsv", "syn-mrpc"):
        assert part in msg
    assert datasets.config.HF_HUB_OFFLINE is False  # restored


def test_hub_result_is_checked_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_task("rte")
    rows = {"sentence1": ["a", "b", "c"], "sentence2": ["x", "y", "z"], "label": [0, 1, 0], "idx": [0, 1, 2]}
    hub = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows, features=data.features_for(spec))
                                for s in ("train", "validation", "test")})
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or hub)
    td = load_task(spec, max_train_samples=2)
    assert calls[0][0] == ("nyu-mll/glue", "rte") and calls[0][1]["cache_dir"] == os.environ["HF_DATASETS_CACHE"]
    assert list(td.splits) == ["train", "validation"] and td.splits["train"].num_rows == 2
    prov = td.provenance
    assert (prov["source"], prov["path"], prov["config"]) == ("hub", "nyu-mll/glue", "rte")
    assert set(prov["fingerprints"]) == {"train", "validation"}
    hub["validation"] = hub["validation"].cast_column("label", datasets.ClassLabel(names=["yes", "no"]))
    with pytest.raises(DataError, match="changed schema"):
        load_task(spec)
