"""The two sides of an upgrade check: what the user named (requirements, a requirements file, or a venv), checked
before anything is built, and the environment each side's processes run in.

Every process of a side runs this checkout (PYTHONPATH), so both sides use the same harness code; a side may carry a
patch (MODULE:FUNC called at the start of each of its processes through a generated sitecustomize), to try a
workaround or to inject a fault that tests the check itself.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from harness.errors import HarnessError
from harness.upgrade import venvs
from harness.upgrade.venvs import PROJECT, Venv

_SPEC_FORMS = ("a pip requirement such as transformers==4.57.6, or 'transformers @ git+https://...@main' "
               "(repeat the option for several)", "a requirements file (one requirement per line)",
               "the path of an existing virtualenv", "a wheel or sdist file built here")


@dataclass(frozen=True)
class SideSpec:
    """One side as given: pip requirements (from the command line or a file), or an existing venv."""

    name: str  # "from" or "to"
    requirements: tuple[str, ...] = ()
    venv: Path | None = None
    patch: str | None = None  # MODULE:FUNC

    @property
    def label(self) -> str:
        return str(self.venv) if self.venv else ", ".join(self.requirements)


@dataclass(frozen=True)
class Side:
    """A side ready to run: its spec, its venv, and the package versions found there."""

    spec: SideSpec
    venv: Venv
    versions: dict[str, str] = field(default_factory=dict)  # package -> version, as installed in the venv
    patch_dir: Path | None = None  # holds the generated sitecustomize.py when the side has a patch
    packages: tuple[str, ...] = ()  # every distribution but the harness: "name==version sha256-of-its-RECORD"
    editable: tuple[str, ...] = ()  # distributions installed editable (their code can change under one version)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def transformers(self) -> str:
        return self.versions.get("transformers", "?")

    @property
    def title(self) -> str:
        shown = ("transformers", "torch", "datasets", "accelerate")
        return ", ".join(f"{p} {self.versions[p]}" for p in shown if p in self.versions)

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment of this side's processes: this checkout first on the path, the patch if any, and
        compiled bytecode kept in the harness cache. Where PYTHONDONTWRITEBYTECODE is set (as in many CI images)
        every process would compile transformers and torch from source again: 6 of its 10 s of imports, measured
        on a 2-core Xeon."""
        paths = [str(self.patch_dir)] if self.patch_dir else []
        paths += [str(PROJECT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**inherited, "PYTHONPATH": os.pathsep.join(paths),
                "PYTHONPYCACHEPREFIX": str(venvs.venv_root().parent / "pycache"), **extra}


def parse(name: str, given: list[str], *, patch: str | None = None) -> SideSpec:
    """--from/--to values as a SideSpec; HarnessError saying which forms are allowed when they fit none."""
    if not given:
        raise HarnessError(f"--{name} is required: {'; '.join(_SPEC_FORMS)}.")
    if patch is not None:
        _check_patch(name, patch)
    if len(given) == 1 and Path(given[0]).expanduser().is_dir():
        folder = Path(given[0]).expanduser().resolve()
        if not (folder / "bin" / "python").exists():
            raise HarnessError(f"--{name} {given[0]}: a folder, but not a virtualenv (no bin/python). "
                               f"Pass {'; or '.join(_SPEC_FORMS)}.")
        return SideSpec(name, venv=folder, patch=patch)
    if len(given) == 1 and Path(given[0]).expanduser().is_file() and not _is_archive(given[0]):
        return SideSpec(name, requirements=read_requirements(Path(given[0]).expanduser()), patch=patch)
    found = []
    for text in given:
        if _is_archive(text) and Path(text).expanduser().is_file():  # a wheel or sdist built here
            found.append(archive_requirement(Path(text).expanduser()))
            continue
        if text.startswith(("git+", "hg+", "svn+", "bzr+")):
            raise HarnessError(f"--{name} {text}: a VCS URL needs the package's name first, e.g. 'transformers @ "
                               f"{text}' (pip's NAME @ URL form).")
        if _looks_like_a_path(text) and not Path(text).expanduser().exists():
            raise HarnessError(f"--{name} {text}: no such file or folder. Pass the path of an existing requirements "
                               f"file, venv, wheel or sdist, or {_SPEC_FORMS[0]}.")
        _requirement(text, where=f"--{name} {text!r}")
        found.append(text)
    return SideSpec(name, requirements=tuple(found), patch=patch)


_ARCHIVES = (".whl", ".tar.gz", ".zip")


def _is_archive(text: str) -> bool:
    return text.endswith(_ARCHIVES)


def archive_requirement(path: Path) -> str:
    """A wheel or sdist file as a pip requirement, NAME @ file:///path (the name read from the file's name)."""
    stem = path.name
    name = stem.split("-")[0] if stem.endswith(".whl") else stem.rsplit("-", 1)[0]
    return f"{name.replace('_', '-')} @ {path.resolve().as_uri()}"


def _looks_like_a_path(text: str) -> bool:
    """A path, not a requirement: a separator or a requirements file's suffix (a requirement has neither)."""
    return "/" in text.split(";")[0].split("@")[0] or text.endswith((".txt", ".in")) or text.startswith(("~", "."))


def read_requirements(path: Path) -> tuple[str, ...]:
    """The requirements of a pip requirements file: comments, blank lines, options and this project skipped."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split(" #")[0].strip()
        if not text or text.startswith("#") or text.startswith("-"):
            continue  # options (-e ., --index-url, -r) are pip's business, not a package to compare
        requirement = _requirement(text, where=f"{path}:{number}")
        if requirement.name.lower() != "harness":
            found.append(text)
    if not found:
        raise HarnessError(f"{path} names no package requirement; write one per line, e.g. transformers==5.24.0.")
    return tuple(found)


def _requirement(text: str, *, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as err:
        raise HarnessError(f"{where} is not a pip requirement ({str(err).splitlines()[0]}); write e.g. transformers==4.57.6, or pass "
                           f"{'; or '.join(_SPEC_FORMS[1:])}.") from None


def _check_patch(name: str, patch: str) -> None:
    module, _, func = patch.partition(":")
    if not module or not func or not func.isidentifier():
        raise HarnessError(f"--patch-{name} {patch!r}: expected MODULE:FUNC (a module importable from the current "
                           "folder, or a path/to/file.py, and the name of a function it defines).")


def prepare(spec: SideSpec, work: Path, *, log: Path | None = None) -> Side:
    """Build or reuse the side's venv, write its patch hook, and read the versions installed there."""
    if spec.venv is not None:
        venv = Venv((str(spec.venv),), spec.venv)
    else:
        venv = venvs.ensure(spec.requirements, log=log)
    # a folder per patch: its compiled hook is cached by the file's time and size, which a rewrite can keep
    patch_dir = _write_patch(spec.patch, work / f"{spec.name}-patch-{_digest(spec.patch)}") if spec.patch else None
    side = Side(spec, venv, patch_dir=patch_dir)
    versions, packages, editable = _installed(side)
    return Side(spec, venv, versions, patch_dir, packages, editable)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


PATCH_FAILED = 97  # the exit status of a side's process whose patch did not import or run


def _write_patch(patch: str, folder: Path) -> Path:
    """A sitecustomize.py that imports MODULE (or runs a file) and calls FUNC before the process does anything.
    Python only prints an exception raised in sitecustomize and goes on unpatched, so this one ends the process
    (status PATCH_FAILED, the reason on stderr) and marks success in HARNESS_PATCH, which `prepare` reads back."""
    module, _, func = patch.partition(":")
    folder.mkdir(parents=True, exist_ok=True)
    if module.endswith(".py"):
        load = (f"    import runpy\n    runpy.run_path({str(Path(module).resolve())!r})[{func!r}]()\n")
    else:
        load = (f"    import importlib, sys\n    sys.path.insert(0, {os.getcwd()!r})\n"
                f"    getattr(importlib.import_module({module!r}), {func!r})()\n")
    hook = (f"# harness upgrade-check: the side's patch {patch}\nHARNESS_PATCH = None\ntry:\n{load}"
            f"except BaseException as err:\n    import os, sys\n"
            f"    print({f'harness patch {patch} failed: '!r} + type(err).__name__ + ': ' + str(err), file=sys.stderr,"
            " flush=True)\n"
            f"    os._exit({PATCH_FAILED})\nHARNESS_PATCH = {patch!r}\n")
    (folder / "sitecustomize.py").write_text(hook, encoding="utf-8")
    return folder


_VERSIONS = """
import hashlib, importlib.metadata as m, json, platform, sys
out = {"patch": getattr(sys.modules.get("sitecustomize"), "HARNESS_PATCH", None), "packages": [], "editable": [],
       "python": platform.python_version()}
for name in ("transformers", "torch", "datasets", "accelerate", "evaluate", "tokenizers", "harness"):
    try:
        out[name] = m.version(name).split("+")[0]
    except m.PackageNotFoundError:
        pass
for dist in m.distributions():
    name = (dist.metadata["Name"] or "?").lower()
    if name == "harness":
        continue
    direct = dist.read_text("direct_url.json") or ""
    record = (dist.read_text("RECORD") or "") + direct
    out["packages"].append(f"{name}=={dist.version} {hashlib.sha256(record.encode()).hexdigest()[:16]}")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        out["editable"].append(name)
out["packages"].sort()
print(json.dumps(out))
"""


def _installed(side: Side) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]:
    """The side venv's package versions, every distribution with a digest of its files (RECORD lists each file's
    hash; direct_url.json names a VCS commit), and the editable ones; an error when the venv cannot run the harness
    (missing transformers/pytest)."""
    import json

    done = subprocess.run([str(side.venv.python), "-c", _VERSIONS], capture_output=True, text=True,
                          env=side.environ(), cwd=PROJECT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"the {side.name} side ({side.spec.label}) does not start: {tail[0]}. If it has a patch, "
                           f"check that {side.spec.patch or 'MODULE:FUNC'} imports and runs in that venv.")
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    packages, editable = tuple(versions.pop("packages")), tuple(versions.pop("editable"))
    applied = versions.pop("patch")
    if applied != side.spec.patch:
        raise HarnessError(f"the {side.name} side's patch {side.spec.patch} did not run (another sitecustomize "
                           f"module came first: {applied!r}); remove that module from the venv or PYTHONPATH.")
    missing = [p for p in ("transformers", "torch", "datasets") if p not in versions]
    probe = subprocess.run([str(side.venv.python), "-c", "import pytest, hypothesis, harness"],
                           capture_output=True, text=True, env=side.environ(), cwd=PROJECT)
    if missing or probe.returncode != 0:
        lacking = ", ".join(missing) or "pytest/hypothesis or the harness's dependencies"
        raise HarnessError(f"the {side.name} side's venv {side.venv.path} lacks {lacking}; install them there "
                           f"(`{side.venv.python} -m pip install -e '{PROJECT}[test]'`) or name requirements "
                           "instead of a venv, so the check builds one.")
    return versions, packages, editable
