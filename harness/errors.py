"""One exception family; every message says what was wrong, what is allowed and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A user-facing error with an actionable message."""


class UnknownNameError(HarnessError, KeyError):
    """A registry lookup missed (task, model, preset, …)."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        names = sorted(available)
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"Unknown {kind} {name!r}.{hint} Available: {', '.join(names)}.")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DataError(HarnessError):
    """Missing or malformed task data."""


class ModelLoadError(HarnessError):
    """A checkpoint could not be loaded."""


class TrainingError(HarnessError):
    """Training went wrong in a way the user must act on (e.g. a non-finite loss)."""


class TaskFileError(HarnessError):
    """A user task file (TOML/YAML) is missing, unparsable or declares something invalid."""
