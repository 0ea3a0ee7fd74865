"""API changes between two environments, from `probe signatures` and `probe walkthrough` of each side. Pure.

- signature diff: parameters removed, added, changed in kind, or given another default, per API entry point;
- warnings: the deprecations the walkthrough raises on each side (what the new side removed or will remove);
- a user's script: the keyword arguments it passes to those entry points that the new side no longer accepts.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Signatures = Mapping[str, Sequence[Mapping[str, Any]]]  # "Trainer.__init__" -> [{"name", "kind", "default"}]
_VARIADIC = ("VAR_KEYWORD", "VAR_POSITIONAL")


@dataclass(frozen=True)
class ApiChange:
    target: str  # "TrainingArguments.__init__"
    parameter: str
    change: str  # "removed", "added", "default", "kind"
    old: str | None = None
    new: str | None = None

    @property
    def breaking(self) -> bool:
        """Code that ran before can fail: a parameter gone, or one added without a default."""
        return self.change == "removed" or (self.change == "added" and self.new == "required")

    def describe(self) -> str:
        where = f"{self.target.replace('.__init__', '')}({self.parameter})"
        return {"removed": f"{where} removed (default was {self.old})",
                "added": f"{where} added ({'required' if self.new == 'required' else 'default ' + str(self.new)})",
                "default": f"{where} default {self.old} -> {self.new}",
                "kind": f"{where} now {self.new} (was {self.old})"}[self.change]


def diff(old: Signatures, new: Signatures) -> list[ApiChange]:
    changes = []
    for target in sorted(set(old) | set(new)):
        before = {p["name"]: p for p in old.get(target, ())}
        after = {p["name"]: p for p in new.get(target, ())}
        for name, p in before.items():
            if name not in after:
                changes.append(ApiChange(target, name, "removed", old=p["default"]))
            elif p["kind"] != after[name]["kind"]:
                changes.append(ApiChange(target, name, "kind", old=p["kind"], new=after[name]["kind"]))
            elif p["default"] != after[name]["default"]:
                changes.append(ApiChange(target, name, "default", old=p["default"], new=after[name]["default"]))
        for name, p in after.items():
            if name not in before and p["kind"] not in _VARIADIC:
                changes.append(ApiChange(target, name, "added", new=p["default"] if p["default"] is not None
                                         else "required"))
    return changes


def grouped(changes: Sequence[ApiChange]) -> list[tuple[str, str, str]]:
    """(what, where, change) table rows: removals and additions one row per entry point listing the parameters,
    changed defaults and kinds one row each; breaking rows first."""
    rows = []
    for target in sorted({c.target for c in changes}):
        mine = [c for c in changes if c.target == target]
        where = target.replace(".__init__", "")
        removed = [c.parameter for c in mine if c.change == "removed"]
        required = [c.parameter for c in mine if c.change == "added" and c.breaking]
        added = [c.parameter for c in mine if c.change == "added" and not c.breaking]
        if removed:
            rows.append(("removed (breaking)", where, ", ".join(removed)))
        if required:
            rows.append(("added without a default (breaking)", where, ", ".join(required)))
        rows += [("changed", where, c.describe()) for c in mine if c.change in ("default", "kind")]
        if added:
            rows.append(("added", where, ", ".join(added)))
    return sorted(rows, key=lambda r: "breaking" not in r[0])


@dataclass(frozen=True)
class ScriptUse:
    """A keyword argument a script passes to an API entry point that the new side does not accept."""

    path: str
    line: int
    call: str  # "TrainingArguments"
    keyword: str

    def describe(self) -> str:
        return f"{self.path}:{self.line} {self.call}({self.keyword}=...)"


_CALLS = {"TrainingArguments": "TrainingArguments.__init__", "Trainer": "Trainer.__init__",
          "DataCollatorWithPadding": "DataCollatorWithPadding.__init__", "train": "Trainer.train",
          "evaluate": "Trainer.evaluate", "predict": "Trainer.predict"}


def script_uses(path: Path, signatures: Signatures) -> list[ScriptUse]:
    """Keyword arguments in `path`'s calls to TrainingArguments, Trainer, DataCollatorWithPadding and
    trainer.train/evaluate/predict that `signatures` (the new side's) does not accept. Static: the script is parsed,
    not run."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as err:
        raise HarnessError(f"--script {path}: cannot be read ({err}); pass the training script's path.") from None
    except SyntaxError as err:
        raise HarnessError(f"--script {path}: not valid Python (line {err.lineno}: {err.msg}).") from None
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else (
            node.func.attr if isinstance(node.func, ast.Attribute) else None)
        target = _CALLS.get(name or "")
        if target is None or target not in signatures:
            continue
        params = signatures[target]
        if any(p["kind"] == "VAR_KEYWORD" for p in params):
            continue  # accepts anything
        accepted = {p["name"] for p in params}
        found += [ScriptUse(str(path), k.lineno, name or "", k.arg) for k in node.keywords
                  if k.arg is not None and k.arg not in accepted]
    return sorted(found, key=lambda u: u.line)


# -------------------------------------------------------------------------------------------------- warnings

_DEPRECATION = re.compile(r"deprecat|will be removed|removed in|no longer|future version", re.IGNORECASE)


def is_deprecation(warning: Mapping[str, Any]) -> bool:
    return warning["category"] in ("DeprecationWarning", "FutureWarning", "PendingDeprecationWarning") or \
        bool(_DEPRECATION.search(warning["message"]))


def _normalized(message: str) -> str:
    """Paths and numbers vary between runs and machines; compare messages without them."""
    return re.sub(r"\d+(\.\d+)*", "N", re.sub(r"(/[^\s:'\"]+)+", "PATH", message))


def warning_changes(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Deprecations: raised on both sides, gone on the new side, new on the new side (by normalized message)."""
    before = {_normalized(w["message"]): w for w in old if is_deprecation(w)}
    after = {_normalized(w["message"]): w for w in new if is_deprecation(w)}
    return {"both": [after[k] for k in after if k in before],
            "gone": [before[k] for k in before if k not in after],
            "new": [after[k] for k in after if k not in before]}
