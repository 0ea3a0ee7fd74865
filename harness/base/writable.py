"""Folders and files the harness will write, checked before any work: one error naming the option or variable."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import HarnessError


def writable_folder(root: Path, given_as: str) -> Path:
    """`root` exists (made if missing) and takes a file, checked before any work: a file there, a read-only or
    unmakeable folder is one HarnessError naming `given_as` (the option or variable the user set)."""
    if root.exists() and not root.is_dir():
        raise HarnessError(f"{given_as} {root} is a file, not a folder; pass a folder (it is created if missing).")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".harness-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise HarnessError(f"{given_as} {root} cannot be written: {err.strerror or err} ({type(err).__name__}). "
                           "Pass a folder you can write to.") from None
    return root


def writable_file(path: Path, given_as: str) -> Path:
    """`path` can be written as a file (its folder made if missing), checked before any work."""
    if path.is_dir():
        raise HarnessError(f"{given_as} {path} is a folder; pass a file name (e.g. {path / 'out.json'}).")
    writable_folder(path.parent if str(path.parent) else Path("."), f"the folder of {given_as}")
    return path
