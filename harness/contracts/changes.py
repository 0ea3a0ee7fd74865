"""Every change between two contract snapshots: situations leaf by leaf, signatures argument by argument."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core import compat


@dataclass(frozen=True)
class Change:
    section: str  # a situation name or a signature name
    what: str

    def __str__(self) -> str:
        return f"{self.section}: {self.what}"


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _diff_values(section: str, path: str, old: Any, new: Any) -> list[Change]:
    """Leaf-by-leaf differences; string lists (metric keys, fields) as added/removed items."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                changes.append(Change(section, f"{where} removed (was {_show(old[key])})"))
            elif key not in old:
                changes.append(Change(section, f"{where} added ({_show(new[key])})"))
            else:
                changes += _diff_values(section, where, old[key], new[key])
        return changes
    if old == new:
        return []
    if (isinstance(old, list) and isinstance(new, list) and path.endswith(("metric_keys", "fields"))
            and all(isinstance(v, str) for v in old + new)):
        added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
        parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed
                                                                    else [])
        return [Change(section, f"{path} {'; '.join(parts) or 'reordered'}")]
    if old is None or new is None:
        return [Change(section, f"{path} changed from {_show(old)} to {_show(new)} (None-ness)")]
    return [Change(section, f"{path} changed from {_show(old)} to {_show(new)}")]


def _diff_signature(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    for arg in old:
        if arg not in new:
            replacement = (compat.ARGUMENT_REPLACEMENTS.get(f"{name}.{arg}") or old[arg].get("alias_of")
                           or compat.ARGUMENT_REPLACEMENTS.get(f"{name.split('.')[0]}.{arg}"))
            hint = f" (use {replacement})" if replacement else ""
            changes.append(Change(name, f"removed argument {arg}{hint}"))
    for arg in new:
        if arg not in old:
            changes.append(Change(name, f"added argument {arg} (default {_show(new[arg]['default'])})"))
    for arg in old:
        if arg in new and old[arg] != new[arg]:
            for key in ("kind", "default", "alias_of"):
                if old[arg].get(key) != new[arg].get(key):
                    changes.append(Change(name, f"{key} of {arg} changed from {_show(old[arg].get(key))} to "
                                                f"{_show(new[arg].get(key))}"))
    return changes


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every change from snapshot `old` to `new`: situations (keys, dtypes, shapes, None-ness, padding, what
    compute_metrics saw) and signatures (removed, added, changed arguments). Library versions are not changes."""
    changes: list[Change] = []
    old_situations, new_situations = old["situations"], new["situations"]
    for name in old_situations:
        if name not in new_situations:
            changes.append(Change(name, "situation not observed in the newer snapshot"))
    for name in new_situations:
        if name not in old_situations:
            changes.append(Change(name, "situation not observed in the older snapshot"))
        else:
            changes += _diff_values(name, "", old_situations[name], new_situations[name])
    for name in sorted(set(old["signatures"]) | set(new["signatures"])):
        changes += _diff_signature(name, old["signatures"].get(name, {}), new["signatures"].get(name, {}))
    return changes


def render_diff(old: Mapping[str, Any], new: Mapping[str, Any], changes: Sequence[Change]) -> str:
    head = (f"transformers {old['libraries'].get('transformers')} -> {new['libraries'].get('transformers')}: "
            f"{len(changes)} change(s)")
    lines, section = [head], None
    for change in changes:
        if change.section != section:
            section = change.section
            lines.append(f"\n{section}")
        lines.append(f"  - {change.what}")
    return "\n".join(lines)
