"""The one markdown table writer: a header, a separator, one line per row; pipes and newlines in cells escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> list[str]:
    """The table's lines; a row missing a column shows an empty cell."""
    return ["| " + " | ".join(map(cell, columns)) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows)]
