"""The local_tokenizer invariant turns red on a matching tokenizer fault, naming the check that caught it.

Each fault patches a BERT tokenizer class (or hands it a damaged vocab file) the way a library regression or a bad
download would, runs check_tokenizer on the witness built with that class, and asserts which checks report it. The
unpatched witness must pass first, so a fault test cannot pass on a check that always fails. Known defects of the
installed transformers that break the witness anyway are listed in KNOWN, each with the break that shows it and a
case that avoids it; a test fails once a listed defect stops showing, so its range gets narrowed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import transformers
from hypothesis import HealthCheck, given, settings

from harness.invariants import defects
from harness.invariants import tokenization as tk
from harness.invariants.tokenization import (WITNESS, TokenizerCase, available_backends, check_tokenizer,
                                           reported_checks, tokenizer_cases)

BACKENDS = available_backends()


# ------------------------------------------------------------------ known defects of the installed transformers


@dataclass(frozen=True)
class Known:
    """A registered defect (harness.invariants.defects) of the local_tokenizer invariant: which cases it applies to,
    the break that shows it, and the same case without what triggers it."""

    id: str
    applies: Callable[[TokenizerCase], bool]
    shows: str  # part of the detail of the break that shows it
    avoid: Callable[[TokenizerCase], TokenizerCase]

    @property
    def summary(self) -> str:
        return defects.by_id(self.id).summary

    def covers(self, case: TokenizerCase) -> bool:
        return defects.by_id(self.id).covers(transformers.__version__) and self.applies(case)


KNOWN = (
    Known("bert-fast-vocab-file-ignored", lambda c: c.backend == "fast" and c.keyword == "vocab_file",
          "has 5 pieces, the file has", lambda c: replace(c, keyword="vocab")),
    Known("bert-legacy-no-token-type-ids", lambda c: c.backend == "slow" and c.pair, "token_type_ids absent",
          lambda c: replace(c, pair=False)),
)


def sound(case: TokenizerCase) -> TokenizerCase:
    """`case` without what the installed version's known defects break."""
    for known in KNOWN:
        if known.covers(case):
            case = known.avoid(case)
    return case


def witness(backend: str) -> TokenizerCase:
    return sound(replace(WITNESS, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_witness_passes_unpatched(backend: str) -> None:
    case = witness(backend)
    assert check_tokenizer(case) == [], case.reproduce_snippet()


@pytest.mark.parametrize("known", [k for k in KNOWN if any(k.covers(replace(WITNESS, backend=b)) for b in BACKENDS)],
                         ids=lambda k: k.id)
def test_known_defect_still_shows(known: Known) -> None:
    for backend in BACKENDS:
        case = replace(WITNESS, backend=backend)
        if known.covers(case):
            found = check_tokenizer(case)
            assert any(known.shows in b.detail for b in found), (known.summary, [str(b) for b in found])


# ------------------------------------------------------------------ faults

# A fault patches the class (or writes a damaged vocab file under the test's folder) and returns the fields of the
# witness to change.
Inject = Callable[[pytest.MonkeyPatch, type, Path], dict[str, Any]]


@dataclass(frozen=True)
class Fault:
    name: str
    checks: frozenset[str]  # the checks that must report it
    inject: Inject
    only: bool = False  # True: no other check may report it


def patched(monkeypatch: pytest.MonkeyPatch, owner: type, name: str,
            make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, functools.wraps(original)(make(original)))  # wraps: keeps the signature


def built_cased(monkeypatch: pytest.MonkeyPatch, cls: type, folder: Path) -> dict[str, Any]:
    """The constructor drops do_lower_case=True (a regression in its argument handling): a cased tokenizer."""
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **{**kwargs, "do_lower_case": False})
        return __init__
    patched(monkeypatch, cls, "__init__", make)
    return {}


def decoding(change: Callable[[Any, str, Any], str]) -> Inject:
    """decode() returns change(tokenizer, its text, the ids)."""
    def inject(monkeypatch: pytest.MonkeyPatch, cls: type, folder: Path) -> dict[str, Any]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            def decode(self: Any, ids: Any, *args: Any, **kwargs: Any) -> str:
                return change(self, original(self, ids, *args, **kwargs), ids)
            return decode
        patched(monkeypatch, cls, "decode", make)
        return {}
    return inject


def drop_last_word(tokenizer: Any, text: str, ids: Any) -> str:
    return text.rsplit(" ", 1)[0]


def drop_non_ascii(tokenizer: Any, text: str, ids: Any) -> str:
    return text.encode("ascii", "ignore").decode()


def keep_wordpiece_markers(tokenizer: Any, text: str, ids: Any) -> str:
    """A decoder that lost its WordPiece decoder: the pieces joined by spaces, "##" and all."""
    return " ".join(tokenizer.convert_ids_to_tokens(list(ids), skip_special_tokens=True))


def vocab_file(edit: Callable[[list[str]], list[str]]) -> Inject:
    """The witness built from an edited copy of the packaged vocab.txt."""
    def inject(monkeypatch: pytest.MonkeyPatch, cls: type, folder: Path) -> dict[str, Any]:
        path = folder / "vocab.txt"
        path.write_text("".join(f"{line}\n" for line in edit(tk.vocab_lines(tk.vocab_path("minilm")))),
                        encoding="utf-8")
        return {"vocab": str(path)}
    return inject


def without_common_pieces(lines: list[str]) -> list[str]:
    """A truncated download: "the", "." and "," missing, so every later id shifts and "." and "," are [UNK]."""
    return [line for line in lines if line not in ("the", ".", ",")]


def duplicated_line(lines: list[str]) -> list[str]:
    """"[unused5]" (line 6) overwritten with "the": 30522 lines but 30521 distinct pieces; "the" keeps its id."""
    assert lines[6] == "[unused5]" and "the" in lines
    return lines[:6] + ["the"] + lines[7:]


FAULTS = (
    Fault("built-cased", frozenset({"agreement", "unknowns"}), built_cased),
    Fault("decode-drops-last-word", frozenset({"round_trip"}), decoding(drop_last_word), only=True),
    Fault("decode-drops-non-ascii", frozenset({"round_trip"}), decoding(drop_non_ascii), only=True),
    Fault("decode-keeps-wordpiece-markers", frozenset({"round_trip"}), decoding(keep_wordpiece_markers), only=True),
    Fault("vocab-lines-removed", frozenset({"agreement", "unknowns", "specials"}), vocab_file(without_common_pieces)),
    Fault("vocab-line-duplicated", frozenset({"specials"}), vocab_file(duplicated_line), only=True),
)


@pytest.fixture
def reference() -> Iterator[None]:
    """The checkpoint's own tokenizer, loaded before a fault patches the class it is an instance of."""
    tk.reference_tokenizer()
    yield


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_breaks_its_check(reference: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: Fault,
                                backend: str) -> None:
    case = witness(backend)
    assert check_tokenizer(case) == [], "the unpatched witness must pass first"
    cls = tk.tokenizer_class(backend)
    assert cls is not None
    faulty = replace(case, **fault.inject(monkeypatch, cls, tmp_path))
    found = check_tokenizer(faulty)
    checks = reported_checks(found)
    assert fault.checks <= checks, [str(b) for b in found]
    if fault.only:
        assert checks == fault.checks, [str(b) for b in found]
    assert all(b.invariant == "local_tokenizer" and b.setting == faulty.setting for b in found)


# ------------------------------------------------------------------ cases the installed version cannot build


def test_a_missing_class_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tk, "tokenizer_class", lambda backend: None)
    [broken] = check_tokenizer(WITNESS)
    assert reported_checks([broken]) == {"build"} and "has no fast BERT tokenizer class" in broken.detail


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_argument_the_class_lacks_is_reported(backend: str) -> None:
    cls = tk.tokenizer_class(backend)
    assert cls is not None
    if tk.takes(cls, "vocab"):
        pytest.skip(f"{cls.__name__} takes vocab=")
    [broken] = check_tokenizer(replace(WITNESS, backend=backend, keyword="vocab"))
    assert reported_checks([broken]) == {"build"} and "takes no vocab= argument" in broken.detail


def test_case_repr_is_valid_python() -> None:
    case = replace(WITNESS, texts=WITNESS.texts[:3], vocab="/tmp/vocab.txt", keyword="vocab")
    assert eval(repr(case), {"TokenizerCase": TokenizerCase}) == case
    assert eval(repr(WITNESS), {"TokenizerCase": TokenizerCase}) == WITNESS


# ------------------------------------------------------------------ drawn cases


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=tokenizer_cases())
def test_drawn_cases_hold(case: TokenizerCase) -> None:
    assert check_tokenizer(sound(case)) == [], sound(case).reproduce_snippet()
