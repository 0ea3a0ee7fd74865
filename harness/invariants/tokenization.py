"""The "local_tokenizer" invariant: a BERT tokenizer built from a vocabulary file, as offline users build one.

Offline, people write `BertTokenizerFast(vocab_file="vocab.txt", do_lower_case=True)` (or the Python class) instead of
`from_pretrained`. `check_tokenizer(case)` builds one that way from the packaged all-MiniLM-L6-v2 vocab.txt (or a
vocab file the case names) and checks it on task text (TEXTS by default), returning `Broken` items:
1. agreement  - the checkpoint's own tokenizer (AutoTokenizer.from_pretrained of the folder) gives the same input_ids
                for each text, and the same input_ids, token_type_ids and attention_mask for each pair; only when
                the case's do_lower_case is the checkpoint's (it is uncased)
2. unknowns   - at most UNK_BOUND of the word pieces (special tokens excluded) are [UNK]
3. round_trip - encode(decode(encode(x), skip_special_tokens=True)) gives encode(x)'s ids, [UNK] pieces aside
4. specials   - [CLS] first, [SEP] last (and between a pair), their ids are their vocab-file lines, and the vocabulary
                has as many pieces as the file has lines and as the checkpoint's model has embedding rows
Each break's detail starts with its check's name (CHECKS, or "build" when the tokenizer cannot be built).
"fast" is the Rust-backed class (4.x BertTokenizerFast, 5.x BertTokenizer), "slow" the Python one (4.x BertTokenizer,
5.x BertTokenizerLegacy); a case naming a class or argument the installed version lacks is reported, not raised.
`WITNESS` is the fixed case a sound version passes (4.51.3 and 4.57.6 do; 5.25.0 ignores vocab_file= in its fast
class); `tokenizer_cases()` draws cases (it imports hypothesis, lazily).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.data import synthetic
from harness.core.models import packaged_minilm_path
from harness.data.tasks import get_task
from harness.invariants.cases import Broken

if TYPE_CHECKING:
    from hypothesis import strategies as st

INVARIANT = "local_tokenizer"
BACKENDS = ("fast", "slow")  # Rust-backed (tokenizers) or pure Python
KEYWORDS = ("vocab_file", "vocab")  # the constructor argument naming the file: 4.x and the docs / 5.x fast's own
VOCABS = ("minilm",)  # named vocab files; any other value is a path to a vocab.txt
ENCODED = ("input_ids", "token_type_ids", "attention_mask")
# [UNK] budget: the uncased 30522-piece vocabulary has a piece for every lower-case Latin letter, digit, ASCII and
# common typographic punctuation (° – — “ ” ’ € £ …), and the lower-casing normalizer strips accents (café -> cafe),
# so English text only meets [UNK] on rare symbols and emoji. Measured on TEXTS with transformers 5.25.0 (both
# classes) and 4.57.6 / 4.51.3: 0 of 667 pieces. 1 % leaves room for a stray symbol in user text yet is far below
# what a broken build gives on TEXTS: a cased build of this vocab turns every capitalized word into [UNK] (53 of 662
# pieces, 8.0 %), a vocab file missing "." and "," gives 78 of 756 (10.3 %), an ignored vocab file 100 %.
UNK_BOUND = 0.01
MOST_SHOWN = 3  # failing texts quoted per check


def _task_texts(task: str, rows: int) -> tuple[str, ...]:
    """The first `rows` rows of a built-in task's validation split, its text columns interleaved (a pair task
    gives sentence1, sentence2, sentence1, ...: consecutive texts are the task's own pairs)."""
    spec = get_task(task)
    columns = synthetic.generate(spec, "validation")
    return tuple(columns[key][i] for i in range(rows) for key in spec.text_keys)


# English in the style of GLUE MRPC news text: spaced punctuation, quotes, digits, money, accents, dashes.
HANDWRITTEN = (
    "The company said its third-quarter profit rose 12.5 % to $ 1.34 billion , or 87 cents a share .",
    "Shares of the café chain fell 3 % on Tuesday after a naïve forecast , two analysts said .",
    '" We are not going to comment on that , " a spokeswoman for the museum told reporters .',
    "The mayor's office didn't return calls seeking comment late Friday.",
    "Zoë and José met at the Crème Brûlée festival in Montréal on 14 July 2003 .",
    "The index closed at 9,876.54 points, up 0.8% from Monday's close.",
    'He said: "It\'s a rôle I\'ve wanted since 1999 – honestly!"',
    "Über 40 delegates from São Paulo attended the résumé workshop ( see page 7 ) .",
    "Temperatures reached -5 °C overnight ; roads were closed from 10:30 p.m. until 6 a.m.",
    "The jury's verdict — guilty on all 3 counts — was read aloud at 4:15 pm by Judge O'Neill .",
    "“ It was a façade , ” she wrote in an e-mail to The Associated Press on Wednesday .",
    "Revenue of £ 250 million and € 310 million was reported by Nestlé and L'Oréal in 2002 .",
    "The board does n't expect a deal , and it 's not clear the rivals ca n't agree by 2004 .",  # split as in SST-2
)
# 24 paraphrase sentences (12 syn-mrpc pairs), 16 syn-sst2 reviews and the hand-written sentences: 53 texts.
TEXTS: tuple[str, ...] = _task_texts("syn-mrpc", 12) + _task_texts("syn-sst2", 16) + HANDWRITTEN


@dataclass(frozen=True)
class TokenizerCase:
    """One tokenizer built from a vocab file and the text it must handle; its repr is valid Python."""

    backend: str = "fast"  # one of BACKENDS
    do_lower_case: bool = True
    texts: tuple[str, ...] = TEXTS
    pair: bool = False  # also encode (texts[i], texts[i + 1]) pairs, the last with the first, as GLUE MRPC does
    vocab: str = "minilm"  # one of VOCABS, or a path to a vocab.txt
    keyword: str = "vocab_file"  # one of KEYWORDS: cls(vocab_file=path) or cls(vocab=path)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"TokenizerCase.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.keyword not in KEYWORDS:
            raise ValueError(f"TokenizerCase.keyword must be one of {KEYWORDS}, got {self.keyword!r}")
        if not self.texts or not all(isinstance(t, str) and t.strip() for t in self.texts):
            raise ValueError("TokenizerCase.texts must be a non-empty tuple of non-blank strings")

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.texts, self.texts[1:] + self.texts[:1])) if self.pair else ()

    @property
    def setting(self) -> str:
        cased = "lower-cased" if self.do_lower_case else "cased"
        return (f"{self.backend} BERT tokenizer from {self.vocab} vocab ({self.keyword}=), {cased}, "
                f"{len(self.texts)} texts{' and their pairs' if self.pair else ''}")

    def reproduce_snippet(self, invariant: str = "local_tokenizer") -> str:
        return ("from harness.invariants.tokenization import *\n"
                f"print(*check_tokenizer({self!r}), sep='\\n')")


# ------------------------------------------------------------------ building


def tokenizer_class(backend: str) -> type | None:
    """The installed version's BERT tokenizer class for `backend`, or None where it has none."""
    import transformers

    fast_base = getattr(transformers, "PreTrainedTokenizerFast", None)  # 5.x: an alias of TokenizersBackend
    names = ("BertTokenizerFast", "BertTokenizer") if backend == "fast" else ("BertTokenizerLegacy", "BertTokenizer")
    for name in names:
        cls = getattr(transformers, name, None)
        if not isinstance(cls, type):
            continue
        is_fast = isinstance(fast_base, type) and issubclass(cls, fast_base)
        if is_fast == (backend == "fast"):
            return cls
    return None


def available_backends() -> tuple[str, ...]:
    return tuple(b for b in BACKENDS if tokenizer_class(b) is not None)


def vocab_path(vocab: str) -> Path:
    return packaged_minilm_path() / "vocab.txt" if vocab == "minilm" else Path(vocab)


def vocab_lines(path: Path) -> list[str]:
    """The vocab file's pieces, one a line, read as transformers' load_vocab reads them (line i is id i)."""
    with open(path, encoding="utf-8") as reader:
        return [line.rstrip("\n") for line in reader.readlines()]


class Unavailable(Exception):
    """The case asks what the installed version cannot build (a class or a constructor argument it lacks)."""


def takes(cls: type, argument: str) -> bool:
    return argument in inspect.signature(cls.__init__).parameters


def build(case: TokenizerCase) -> Any:
    """The tokenizer as an offline user builds it: the class, the vocab file by path, do_lower_case."""
    import transformers

    cls = tokenizer_class(case.backend)
    if cls is None:
        raise Unavailable(f"transformers {transformers.__version__} has no {case.backend} BERT tokenizer class")
    # vocab_file= is the user's documented way on every version, so it is always tried (a class that only swallows
    # it in **kwargs is what check 4 is for); vocab= is the 5.x fast class's own argument and only exists there
    if case.keyword != "vocab_file" and not takes(cls, case.keyword):
        raise Unavailable(f"transformers {transformers.__version__}'s {cls.__name__} takes no {case.keyword}= argument")
    return cls(**{case.keyword: str(vocab_path(case.vocab))}, do_lower_case=case.do_lower_case)


@functools.cache
def reference_tokenizer() -> Any:
    """The checkpoint's own tokenizer (its tokenizer.json / tokenizer_config.json), loaded once per process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(packaged_minilm_path()))


def _checkpoint_json(name: str) -> dict[str, Any]:
    return json.loads((packaged_minilm_path() / name).read_text(encoding="utf-8"))


@functools.cache
def checkpoint_lowercases() -> bool:
    return bool(_checkpoint_json("tokenizer_config.json").get("do_lower_case", True))


@functools.cache
def checkpoint_vocab_size() -> int:
    """The model's embedding rows: ids at or above it cannot be fed to the checkpoint."""
    return int(_checkpoint_json("config.json")["vocab_size"])


# ------------------------------------------------------------------ the checks


def _broken(setting: str, detail: str) -> Broken:
    return Broken(INVARIANT, setting, None, detail)


def reported_checks(found: Sequence[Broken]) -> set[str]:
    """The checks (CHECKS, or "build") that reported `found`."""
    return {b.detail.split(":", 1)[0] for b in found}


def _encode(tokenizer: Any, text: str, other: str | None = None) -> dict[str, list[int]]:
    encoded = tokenizer(text) if other is None else tokenizer(text, other)
    return {key: list(encoded[key]) for key in ENCODED if key in encoded}


def _shown(tokenizer: Any, ids: Sequence[int]) -> str:
    return f"{list(ids)} = {tokenizer.convert_ids_to_tokens(list(ids))}"


def _summary(what: str, failures: list[str], total: int) -> str:
    more = f"; and {len(failures) - MOST_SHOWN} more" if len(failures) > MOST_SHOWN else ""
    return f"{what} on {len(failures)} of {total} inputs: " + "; ".join(failures[:MOST_SHOWN]) + more


def _inputs(case: TokenizerCase) -> Iterator[tuple[str, str | None]]:
    yield from ((text, None) for text in case.texts)
    yield from case.pairs


def _label(text: str, other: str | None) -> str:
    return repr(text) if other is None else f"pair ({text!r}, {other!r})"


def check_agreement(case: TokenizerCase, tokenizer: Any, reference: Any) -> list[Broken]:
    """1. The checkpoint's own tokenizer encodes every text to the same input_ids, and every pair to the same
    input_ids, token_type_ids and attention_mask (a lone text's segment ids are all 0 whether returned or not)."""
    failures, total = [], 0
    for text, other in _inputs(case):
        total += 1
        ours, theirs = _encode(tokenizer, text, other), _encode(reference, text, other)
        for key in ENCODED if other is not None else ENCODED[:1]:
            a, b = ours.get(key), theirs.get(key)
            if a == b:
                continue
            if a is None or b is None:
                shown = f"{'absent' if a is None else a} vs the checkpoint's {'absent' if b is None else b}"
            else:
                at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                shown = (f"{_shown(tokenizer, a)} vs the checkpoint's {_shown(reference, b)}" if key == "input_ids"
                         else f"{a} vs the checkpoint's {b}") + f" (first difference at position {at})"
            failures.append(f"{_label(text, other)}: {key} {shown}")
            break
    what = "agreement: disagrees with the checkpoint's own tokenizer"
    return [_broken(case.setting, _summary(what, failures, total))] if failures else []


def unknown_rate(tokenizer: Any, texts: Sequence[str]) -> tuple[int, int, list[str]]:
    """[UNK] pieces, all pieces (special tokens excluded), and the texts with an [UNK] shown with their pieces."""
    unknown, pieces, shown = 0, 0, []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        count = sum(1 for i in ids if i == tokenizer.unk_token_id)
        unknown, pieces = unknown + count, pieces + len(ids)
        if count:
            shown.append(f"{text!r} -> {tokenizer.convert_ids_to_tokens(list(ids))}")
    return unknown, pieces, shown


def check_unknowns(case: TokenizerCase, tokenizer: Any) -> list[Broken]:
    """2. At most UNK_BOUND of the word pieces are [UNK]."""
    unknown, pieces, shown = unknown_rate(tokenizer, case.texts)
    rate = unknown / max(pieces, 1)
    if rate <= UNK_BOUND:
        return []
    return [_broken(case.setting, f"unknowns: [UNK] rate {rate:.1%} ({unknown} of {pieces} pieces, id "
                                  f"{tokenizer.unk_token_id}) exceeds {UNK_BOUND:.0%}: "
                                  + _summary("[UNK]", shown, len(case.texts)))]


def check_round_trip(case: TokenizerCase, tokenizer: Any) -> list[Broken]:
    """3. Decoding and encoding again gives the same ids.

    A lower-casing, accent-stripping tokenizer maps many texts to one id sequence ("Café!" and "cafe !" both), so
    decode(encode(x)) == x is not expected; what must hold is that decode is a right inverse of encode on its image,
    i.e. encode(decode(ids)) == ids: the model sees exactly the ids of the text decode shows. [UNK] is a special token
    and skip_special_tokens drops it, so the original ids are compared without their [UNK] pieces.
    clean_up_tokenization_spaces is turned off: it is a documented, deliberately lossy English detokenizer ("do n't"
    becomes "don't", which encodes as don ' t), on by default for a vocab-file build on 4.x (and the 5.x Python class)
    but off for the checkpoint's own tokenizer, so it is not part of what a decode must preserve.
    """
    failures = []
    for text in case.texts:
        ids = list(tokenizer(text)["input_ids"])
        decoded = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        again = list(tokenizer(decoded)["input_ids"])
        kept = [i for i in ids if i != tokenizer.unk_token_id]
        if again != kept:
            failures.append(f"{text!r} -> {_shown(tokenizer, ids)} -> decoded {decoded!r} -> "
                            f"{_shown(tokenizer, again)}")
    what = "round_trip: encode(decode(ids)) != ids"
    return [_broken(case.setting, _summary(what, failures, len(case.texts)))] if failures else []


def check_specials(case: TokenizerCase, tokenizer: Any, lines: Sequence[str]) -> list[Broken]:
    """4. [CLS] first, [SEP] last and between a pair, their ids their vocab lines; one piece per vocab line."""
    found, name = [], type(tokenizer).__name__
    if tokenizer.vocab_size != len(lines):
        unswallowed = "" if takes(type(tokenizer), case.keyword) else (
            f" ({name}.__init__ has no {case.keyword} parameter: the argument went to **kwargs)")
        found.append(_broken(case.setting, f"specials: {name}({case.keyword}={str(vocab_path(case.vocab))!r}) has "
                                           f"{tokenizer.vocab_size} pieces, the file has {len(lines)} lines"
                                           + unswallowed))
    if tokenizer.vocab_size != checkpoint_vocab_size():
        found.append(_broken(case.setting, f"specials: {name} has {tokenizer.vocab_size} pieces, the checkpoint's "
                                           f"model has {checkpoint_vocab_size()} embedding rows"))
    line_of = {piece: i for i, piece in enumerate(lines)}
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    for token, got in ((tokenizer.cls_token, cls_id), (tokenizer.sep_token, sep_id)):
        if line_of.get(str(token)) != got:
            found.append(_broken(case.setting, f"specials: {token} has id {got}, but it is line "
                                               f"{line_of.get(str(token))} of the vocab file"))
    failures, total = [], 0
    for text, other in _inputs(case):
        total += 1
        encoded = _encode(tokenizer, text, other)
        ids, types = encoded["input_ids"], encoded.get("token_type_ids")
        seps = [i for i, x in enumerate(ids) if x == sep_id]
        bad = ids[:1] != [cls_id] or ids[-1:] != [sep_id] or len(seps) != (1 if other is None else 2)
        if other is not None and not bad and types is not None:
            # segment A is [CLS] ... [SEP] (type 0), segment B is ... [SEP] (type 1)
            bad = types != [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        if bad:
            failures.append(f"{_label(text, other)}: {_shown(tokenizer, ids)}"
                            + (f", token_type_ids {types}" if other is not None else ""))
    if failures:
        what = f"specials: not [CLS] ... [SEP]{' ... [SEP]' if case.pair else ''}"
        found.append(_broken(case.setting, _summary(what, failures, total)))
    return found


CHECKS: tuple[str, ...] = ("agreement", "unknowns", "round_trip", "specials")


def check_tokenizer(case: TokenizerCase) -> list[Broken]:
    """Every break of the local_tokenizer invariant for `case` (empty: it holds)."""
    try:
        tokenizer = build(case)
    except Unavailable as err:
        return [_broken(case.setting, f"build: cannot build it: {err}")]
    except Exception as err:  # a constructor that raises on a valid vocab file is a break too
        return [_broken(case.setting, f"build: building it raised {type(err).__name__}: {err}")]
    lines = vocab_lines(vocab_path(case.vocab))
    found: list[Broken] = []
    if case.do_lower_case == checkpoint_lowercases():
        found += check_agreement(case, tokenizer, reference_tokenizer())
    found += check_unknowns(case, tokenizer)
    found += check_round_trip(case, tokenizer)
    found += check_specials(case, tokenizer, lines)
    return found


# One fixed case every sound version passes: the default class on all of TEXTS, singly and in MRPC-style pairs.
WITNESS = TokenizerCase(backend="fast", do_lower_case=True, texts=TEXTS, pair=True, vocab="minilm")


# ------------------------------------------------------------------ hypothesis


WORDS: tuple[str, ...] = tuple(sorted({w for text in TEXTS for w in text.split()}))
PUNCTUATION = tuple(".,;:!?'\"()-–—…“”‘’%$€£/&")
ACCENTED = tuple("áàâäãåéèêëíìîïóòôöõúùûüýÿçñÁÉÍÓÚÜÇÑ")  # each decomposes to a letter and a stripped mark


def _cased(word: str, how: int) -> str:
    return (word, word.upper(), word.capitalize(), word.lower())[how]


def tokenizer_cases(backends: Sequence[str] | None = None) -> st.SearchStrategy[TokenizerCase]:
    """Lower-casing cases over the installed classes (or `backends`): 1 to 4 short texts of TEXTS' words with drawn
    punctuation, numbers, case changes and accented letters, singly or as pairs. Each case checks in < 0.2 s."""
    from hypothesis import strategies as st

    @st.composite
    def token(draw: st.DrawFn) -> str:
        kind = draw(st.integers(0, 5))
        if kind == 0:
            return draw(st.sampled_from(PUNCTUATION))
        if kind == 1:
            number = str(draw(st.integers(0, 10**6)))
            return number + draw(st.sampled_from(("", ".5", ",000", "%", "th")))
        word = _cased(draw(st.sampled_from(WORDS)), draw(st.integers(0, 3)))
        if kind == 2 and word:  # one letter replaced by an accented one
            at = draw(st.integers(0, len(word) - 1))
            word = word[:at] + draw(st.sampled_from(ACCENTED)) + word[at + 1:]
        glued = draw(st.sampled_from(("", "", "", *PUNCTUATION[:6])))  # punctuation stuck to the word
        return word + glued

    @st.composite
    def text(draw: st.DrawFn) -> str:
        return " ".join(draw(st.lists(token(), min_size=1, max_size=12)))

    @st.composite
    def case(draw: st.DrawFn) -> TokenizerCase:
        return TokenizerCase(backend=draw(st.sampled_from(tuple(backends or available_backends()))),
                             texts=tuple(draw(st.lists(text(), min_size=1, max_size=4))),
                             pair=draw(st.booleans()))

    return case()


__all__ = ["BACKENDS", "CHECKS", "INVARIANT", "KEYWORDS", "TEXTS", "UNK_BOUND", "VOCABS", "WITNESS", "TokenizerCase",
           "Unavailable", "available_backends", "build", "check_agreement", "check_round_trip", "check_specials",
           "check_tokenizer", "check_unknowns", "checkpoint_lowercases", "checkpoint_vocab_size",
           "reference_tokenizer", "reported_checks", "tokenizer_cases", "tokenizer_class", "unknown_rate",
           "vocab_lines", "vocab_path"]
