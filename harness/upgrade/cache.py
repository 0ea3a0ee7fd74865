"""What one side of an upgrade check found, kept between checks: a dependency bot opens many pull requests against
the same base, so the old side is the same environment again and again.

A side's results (its suite's outcomes, API signatures, the walkthrough's warnings, its training records) are
kept under a key made of everything they depend on:
- the side: every distribution in its venv with a digest of its installed files (RECORD lists each file's hash;
  a VCS install names its commit), and the Python version;
- this harness's source (harness/, suites/, the committed contract snapshots, conftest.py, pyproject.toml);
- the machine (CPU model and cores: the training records carry timings);
- the result's own settings (the cells, the marker, the environment variables the harness reads);
and it is reused only while the tiny checkpoints it was made with are unchanged (`checkpoints`).
A side patched by --patch-from/--patch-to, or with an editable install, is never cached: its code can change
without any of that changing. Throughput rounds are never cached: both sides must be timed in the same session.

Layout: HARNESS_CACHE/upgrade/<side key>/<result>-<settings digest>/ holding result.json (when it was made, how
long it took, the value) and, for training runs, the record folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.upgrade import venvs
from harness.upgrade.sides import Side
from harness.upgrade.venvs import PROJECT

SOURCES = ("harness", "suites", "results/contracts", "conftest.py", "pyproject.toml")
ENVIRONMENT = ("HARNESS_", "HF_", "GLUE_DIR", "CUDA_VISIBLE_DEVICES", "TRANSFORMERS_")  # what the sides' code reads


def cache_root() -> Path:
    return venvs.venv_root().parent / "upgrade"


def source_digest(project: Path = PROJECT) -> str:
    """A digest of the harness files a side's results depend on (bytecode and caches left out)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        top = project / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else []
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def checkpoints() -> dict[str, str]:
    """The tiny checkpoints both sides load (HARNESS_CACHE/tiny), folder -> digest of its files. They are built
    once, by whichever version first needs one, and tiny-roberta's random weights differ between the transformers
    that built them (4.57.6 and 5.25.0 do): a result is reused only while every checkpoint that existed when it was
    made is still the same."""
    top = venvs.venv_root().parent / "tiny"
    found = {}
    for folder in sorted(top.iterdir()) if top.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith("."):  # "." : a build still being written
            digest = hashlib.sha256()
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
            found[folder.name] = digest.hexdigest()[:16]
    return found


def environment() -> dict[str, str]:
    """The environment variables the sides' code reads, as a result's setting."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENVIRONMENT)}


def side_key(side: Side, source: str, where: str) -> tuple[str | None, str]:
    """`where`: the machine (harness.machine.env.machine_identity)."""
    """(the side's key, "") or (None, why this side is not cached)."""
    if side.spec.patch:
        return None, f"patched by {side.spec.patch} (a patch's code can change between checks)"
    if side.editable:
        return None, f"editable install of {', '.join(side.editable)} (its code can change under one version)"
    if not side.packages:
        return None, "its packages could not be listed"
    text = json.dumps({"packages": side.packages, "python": side.versions.get("python"), "source": source,
                       "machine": where})
    return hashlib.sha256(text.encode()).hexdigest()[:16], ""


@dataclass(frozen=True)
class Hit:
    value: Any
    made: str  # when the result was made, local time
    seconds: float  # how long it took then
    folder: Path  # holds any files the result kept (training records)


class Cache:
    """Results of one side under its key; a disabled cache (key None, or --no-cache) finds nothing and keeps
    nothing."""

    def __init__(self, key: str | None, root: Path | None = None) -> None:
        self.key = key
        self.root = (root or cache_root()) / key if key else None

    def _folder(self, result: str, settings: Mapping[str, Any]) -> Path | None:
        if self.root is None:
            return None
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.root / f"{result}-{digest}"

    def find(self, result: str, settings: Mapping[str, Any]) -> Hit | None:
        folder = self._folder(result, settings)
        if folder is None or not (folder / "result.json").is_file():
            return None
        try:
            kept = json.loads((folder / "result.json").read_text(encoding="utf-8"))
            hit = Hit(kept["value"], kept["made"], float(kept["seconds"]), folder)
            made_with = kept["checkpoints"]
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is made again
        now = checkpoints()
        return hit if all(now.get(name) == digest for name, digest in made_with.items()) else None

    def keep(self, result: str, settings: Mapping[str, Any], value: Any, seconds: float,
             files: Mapping[str, Path] | None = None) -> None:
        """Keep `value` (JSON) and copies of `files` (name -> folder); written beside and renamed into place, so a
        check that stops half-way leaves no half entry."""
        folder = self._folder(result, settings)
        if folder is None:
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{result}-", dir=folder.parent))
        for name, source in (files or {}).items():
            shutil.copytree(source, staging / name)
        made = time.strftime("%Y-%m-%d %H:%M:%S")
        (staging / "result.json").write_text(json.dumps({"made": made, "seconds": round(seconds, 1),
                                                         "checkpoints": checkpoints(), "value": value}),
                                             encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
