"""Every versioned JSON file the harness keeps (records, baselines, snapshots, verdicts): one reader, one writer.

A `JsonKind` names a file kind, its current schema version, its `update_to_N` migrations and the command that
re-creates such a file. `read` refuses what it cannot read with one message saying what to do; `write` is atomic
(readers see the old file or the complete new one, even after kill -9) and leaves files readable by the group.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Migration = Callable[[dict[str, Any]], dict[str, Any]]


class SchemaError(HarnessError):
    """A stored JSON file that is missing, unreadable, or of a schema version this harness cannot read."""


@dataclass(frozen=True)
class JsonKind:
    name: str  # "run record", "baseline", "contract snapshot", "verdicts file"
    version: int  # current schema_version written by this harness
    remedy: str  # how to re-create such a file, e.g. "re-create it with `harness run`"
    migrations: Mapping[int, Migration] = field(default_factory=dict)  # N -> update_to_N (N-1 -> N)
    required: tuple[str, ...] = ()  # top-level keys a readable file must have
    check: Callable[[dict[str, Any]], list[str]] | None = None  # deeper shape problems of an upgraded payload

    def upgrade(self, payload: Any, *, source: str) -> dict[str, Any]:
        """Bring a decoded payload to `version`, or raise SchemaError saying what to do."""
        if not isinstance(payload, dict):
            raise SchemaError(f"{source} holds a JSON {type(payload).__name__}, not the object of a {self.name}. "
                              f"Move it out of the folder or {self.remedy}.")
        version = payload.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise SchemaError(f"{source} has no integer 'schema_version'; it is not a {self.name}. "
                              f"Move it out of the folder or {self.remedy}.")
        if version > self.version:
            raise SchemaError(f"{source} is a {self.name} of schema_version {version}, newer than this harness "
                              f"reads ({self.version}). Upgrade the harness (git pull; pip install -e .) to read it.")
        while version < self.version:
            step = self.migrations.get(version + 1)
            if step is None:
                raise SchemaError(f"{source} is a {self.name} of schema_version {version} and no migration to "
                                  f"{version + 1} exists; {self.remedy}.")
            payload = step(dict(payload))
            version = payload["schema_version"] = version + 1
        missing = [key for key in self.required if key not in payload]
        if missing:
            raise SchemaError(f"{source} lacks {', '.join(repr(k) for k in missing)} of a version {version} "
                              f"{self.name}; {self.remedy}.")
        problems = self.check(payload) if self.check is not None else []
        if problems:
            raise SchemaError(f"{source} is not a readable {self.name}: {'; '.join(problems[:3])}. Move it out of the "
                              f"folder or {self.remedy}.")
        return payload


def read(path: Path, kind: JsonKind) -> dict[str, Any]:
    """The upgraded payload at `path`; SchemaError when it is missing, not JSON, or not readable as `kind`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path} does not exist; {kind.remedy}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SchemaError(f"{path} cannot be read ({err}); check its permissions or {kind.remedy}.") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path} is not valid JSON ({err}). Restore it from version control or "
                          f"{kind.remedy}.") from None
    return kind.upgrade(payload, source=str(path))


def read_optional(path: Path, kind: JsonKind) -> dict[str, Any] | None:
    """Like `read`, but None when there is no file."""
    return read(path, kind) if Path(path).exists() else None


def write(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON atomically, mode 0666 less the umask (0644 under umask 022), like any file the user creates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(payload), indent=1, sort_keys=False, allow_nan=False)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600: teammates could not read a shared folder
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has no spelling for them); numpy scalars become Python numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return json_safe(value.item())
    return value
