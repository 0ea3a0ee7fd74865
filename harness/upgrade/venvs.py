"""One virtualenv per library set, built with uv and reused: the same harness over other transformers releases.

A venv is keyed by what it holds (the requirement specs, the torch of this environment unless a spec names it, the
Python version), so asking twice reuses it. uv does not read pip's configuration: the find-links folder and index
settings are passed through, so torch comes from the same place (here: the CPU wheel, not GBs of CUDA packages).
The harness itself is installed editable from this project, so every venv runs this very checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Venv:
    specs: tuple[str, ...]  # pip requirement specs, e.g. ("transformers==4.46.3",)
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def label(self) -> str:
        return ", ".join(self.specs)


def transformers_spec(version: str) -> tuple[str, ...]:
    """Specs for one transformers release; a bare version like "4.46.3" means transformers==4.46.3."""
    return (version,) if any(op in version for op in "=<>~!") else (f"transformers=={version}",)


def _torch_spec(specs: tuple[str, ...]) -> tuple[str, ...]:
    """Keep this environment's torch unless a spec names one (a bare torch lets uv pull the CUDA build)."""
    if any(_name(s) == "torch" for s in specs):
        return ()
    import importlib.metadata

    version = importlib.metadata.version("torch").split("+")[0]
    return (f"torch=={version}",)


def venv_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness")).expanduser() / "venvs"


def key(specs: tuple[str, ...]) -> str:
    """The venv's name: its specs, this Python, and this checkout with its pyproject.toml (an editable install keeps
    the dependencies and pytest entry points of the pyproject it was built from)."""
    pyproject = PROJECT / "pyproject.toml"
    built_from = hashlib.sha256(pyproject.read_bytes()).hexdigest()[:12] if pyproject.is_file() else ""
    payload = json.dumps({"specs": sorted(specs), "python": sys.version.split()[0], "project": str(PROJECT),
                          "pyproject": built_from, "files": _local_files(specs)})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _local_files(specs: tuple[str, ...]) -> dict[str, str]:
    """The digest of each local wheel or sdist a spec names (NAME @ file:///...): one rebuilt under the same file
    name is another environment."""
    from urllib.parse import unquote, urlparse

    found = {}
    for spec in specs:
        _, at, url = spec.partition(" @ ")
        if at and url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            found[spec] = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"
    return found


def _name(spec: str) -> str:
    """The package a requirement names ("" for a line that is none, e.g. an option uv printed)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(spec).name.lower().replace("_", "-")
    except InvalidRequirement:
        return ""


def uv_binary() -> str:
    found = shutil.which("uv")
    if not found:
        raise HarnessError("building environments needs uv (fast, cached venvs): `pip install uv`, then run again.")
    return found


def _pip_passthrough() -> list[str]:
    """pip's find-links / index settings from the environment, as uv options (uv does not read pip's config)."""
    args: list[str] = []
    for folder in filter(None, os.environ.get("PIP_FIND_LINKS", "").split()):
        args += ["--find-links", folder]
    if os.environ.get("PIP_INDEX_URL"):
        args += ["--index-url", os.environ["PIP_INDEX_URL"]]
    for url in filter(None, os.environ.get("PIP_EXTRA_INDEX_URL", "").split()):
        args += ["--extra-index-url", url]
    return args


def _pinned(spec: str) -> bool:
    from packaging.requirements import Requirement

    specifiers = list(Requirement(spec).specifier)
    return len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version


def resolve(specs: tuple[str, ...]) -> tuple[str, ...]:
    """Exact pins for `specs`: as given when every one is `name==version`, else what uv resolves them to now (so
    `transformers>=5` gets a new venv when a new release appears, and the same one while none does)."""
    if all(_pinned(s) for s in specs):
        return specs
    done = subprocess.run([uv_binary(), "pip", "compile", "-", "--quiet", "--no-header", "--no-annotate",
                           "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                           *_pip_passthrough()], input="\n".join(specs), capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"could not resolve {', '.join(specs)}: {_uv_said(done.stderr or done.stdout)}. "
                           f"{_uv_advice(done.stderr or done.stdout)}")
    wanted = {_name(s) for s in specs}  # a direct reference (NAME @ URL) resolves to the URL uv pinned
    return tuple(line.strip() for line in done.stdout.splitlines()
                 if line.strip() and not line.startswith("#") and _name(line.strip()) in wanted)


def _uv_said(output: str) -> str:
    """uv's last lines, as one sentence without its own final period."""
    return " / ".join(line.strip() for line in output.strip().splitlines()[-3:]).rstrip(".") or "no output"


def _uv_advice(output: str) -> str:
    """What to do, from what uv said went wrong."""
    if "cache" in output.lower():
        return ("uv's cache is unusable: point UV_CACHE_DIR at a writable folder (or unset it) and "
                "run again.")
    if "no version of" in output or "not found in the package registry" in output:
        return ("A requirement names a version or package the index does not have: check the spelling and "
                "`pip index versions NAME`.")
    if "network" in output.lower() or "connect" in output.lower():
        return "The package index could not be reached: check the network or the index settings."
    return "Check that the versions exist and install beside this torch."


def ensure(specs: tuple[str, ...], *, log: Path | None = None) -> Venv:
    """The venv holding `specs` (+ this torch, + this project editable with its test extras); built if missing.
    Keyed by the exact versions (`resolve`), so asking again reuses it."""
    specs = resolve((*specs, *_torch_spec(specs)))
    venv = Venv(specs, venv_root() / key(specs))
    if (venv.path / ".complete").is_file():
        return venv
    uv = uv_binary()
    shutil.rmtree(venv.path, ignore_errors=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    steps = [[uv, "venv", "-q", str(venv.path), "--python", python],
             [uv, "pip", "install", "-q", "--python", str(venv.python), *_pip_passthrough(), *specs,
              "-e", f"{PROJECT}[test]"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            if log:
                log.write_text(done.stdout + done.stderr, encoding="utf-8")
            shutil.rmtree(venv.path, ignore_errors=True)  # a half-built venv is never reused; do not keep it
            raise HarnessError(f"could not build the environment for {', '.join(specs)}: "
                               f"{_uv_said(done.stderr or done.stdout)}. {_uv_advice(done.stderr or done.stdout)}")
    (venv.path / ".complete").write_text(json.dumps({"specs": specs}), encoding="utf-8")
    return venv
