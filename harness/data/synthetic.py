"""Built-in tasks generated deterministically, in the GLUE hub schema, so the harness runs with no data at all.

Each task is learnable by a tiny randomly initialised model in seconds but not solved at step 0, so a broken
training loop shows up as chance-level scores:
- syn-mrpc: is sentence2 a reordering of sentence1 (equivalent), or does it swap some content words (not)?
- syn-sst2: polar adjectives, some negated ("not good"); the label is the majority polarity after negation.
- syn-stsb: two slot-filled sentences; the score is 5 x the fraction of the four slots they share.
Rows depend only on (task name, split, spec version), never on the run's seed.
"""

from __future__ import annotations

import random

from harness.data.tasks import TaskSpec

SUBJECTS = ("the teacher", "my uncle", "a farmer", "the doctor", "our neighbor", "the pilot", "a student",
            "the baker", "his sister", "the mayor", "a painter", "the captain")
VERBS = (("bought", "was bought by"), ("painted", "was painted by"), ("found", "was found by"),
         ("sold", "was sold by"), ("cleaned", "was cleaned by"), ("moved", "was moved by"),
         ("fixed", "was fixed by"), ("hid", "was hidden by"))
OBJECTS = ("car", "boat", "house", "piano", "bicycle", "table", "garden", "clock", "lamp", "horse")
PLACES = ("in the city", "near the river", "at the station", "in the village", "by the lake", "at the market",
          "on the hill", "in the park")
POSITIVE = ("good", "great", "wonderful", "pleasant", "brilliant", "charming", "lovely", "excellent")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "weak", "annoying")
NOUNS = ("film", "story", "meal", "concert", "book", "hotel", "show", "game")
FILLERS = ("really", "quite", "honestly", "overall", "at times", "mostly", "sometimes", "frankly")


def generate(spec: TaskSpec, split: str) -> dict[str, list]:
    """Columns for one split of a built-in task: text keys, `label` (-1 on test splits, as on the hub), `idx`."""
    if split not in spec.sizes:
        raise ValueError(f"Built-in task {spec.name!r} has no split {split!r}; splits: {sorted(spec.sizes)}")
    rng = random.Random(f"{spec.name}/{split}/v{spec.version}")
    row = _ROW_MAKERS[spec.name]
    rows = [row(rng) for _ in range(spec.sizes[split])]
    columns: dict[str, list] = {key: [r[i] for r in rows] for i, key in enumerate(spec.text_keys)}
    labelled = split not in spec.test_splits
    columns["label"] = [r[-1] if labelled else -1 for r in rows]
    columns["idx"] = list(range(len(rows)))
    return columns


def _clause(rng: random.Random) -> list[str]:
    return [rng.choice(SUBJECTS), rng.choice(range(len(VERBS))), rng.choice(OBJECTS), rng.choice(PLACES)]


def _active(slots: list) -> str:
    subject, verb, obj, place = slots
    return f"{subject} {VERBS[verb][0]} the {obj} {place} ."


def _passive(slots: list) -> str:
    subject, verb, obj, place = slots
    return f"{place.capitalize()} , the {obj} {VERBS[verb][1]} {subject} ."


def _swap_slots(rng: random.Random, slots: list, count: int) -> list:
    changed = list(slots)
    pools = (SUBJECTS, range(len(VERBS)), OBJECTS, PLACES)
    for i in rng.sample(range(4), count):
        changed[i] = rng.choice([w for w in pools[i] if w != slots[i]])
    return changed


def _paraphrase_row(rng: random.Random) -> tuple[str, str, int]:
    slots = _clause(rng)
    equivalent = rng.random() < 0.5
    other = slots if equivalent else _swap_slots(rng, slots, rng.choice((2, 3)))
    return _active(slots), _passive(other), int(equivalent)


def _sentiment_row(rng: random.Random) -> tuple[str, int]:
    count = rng.choice((1, 3))
    parts, score = [], 0
    for _ in range(count):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.35
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        parts.append(("not " if negated else "") + word)
        score += 1 if positive != negated else -1
    filler = rng.choice(FILLERS)
    return f"the {rng.choice(NOUNS)} was {filler} {' and '.join(parts)} .", int(score > 0)


def _similarity_row(rng: random.Random) -> tuple[str, str, float]:
    slots = _clause(rng)
    shared = rng.randint(0, 4)
    other = _swap_slots(rng, slots, 4 - shared)
    writer = rng.choice((_active, _passive))
    return _active(slots), writer(other), 5.0 * shared / 4


_ROW_MAKERS = {"syn-mrpc": _paraphrase_row, "syn-sst2": _sentiment_row, "syn-stsb": _similarity_row}
