"""Environment fingerprint: everything that can change a result, recorded with every run.

`machine_id` identifies one machine without its hostname; `device_class` groups machines whose throughput is
comparable (same accelerator or CPU model and core count); `env_key` identifies the software stack.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "datasets", "evaluate", "accelerate", "tokenizers", "huggingface_hub",
            "safetensors", "numpy", "pandas", "scikit-learn", "scipy")


def _short_hash(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None when a package is absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        return round(kib / 2**20, 1)
    except (OSError, IndexError, ValueError):
        return None


def _machine_id(cpu: str, memory: float | None,
                files: tuple[str, ...] = ("/etc/machine-id", "/var/lib/dbus/machine-id")) -> str:
    """A hash of the OS machine id; of the hardware where none is set (an empty /etc/machine-id, as on the lent GPU
    machines, would otherwise give every such machine the same id)."""
    for candidate in files:
        try:
            text = Path(candidate).read_text().strip()
        except OSError:
            continue
        if text:
            return _short_hash(text)
    return _short_hash(f"{cpu}|{os.cpu_count()}|{memory}")


def machine_identity() -> str:
    """This machine in one line (CPU model, cores, machine id), without importing torch."""
    cpu = _cpu_model()
    return f"{cpu} x{os.cpu_count()} {_machine_id(cpu, _memory_gib())}"


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def _harness_source() -> dict[str, Any]:
    from harness import __version__

    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


@functools.lru_cache(maxsize=1)
def nvidia_driver() -> dict[str, str | None]:
    """The NVIDIA driver's version and the newest CUDA it supports, read from nvidia-smi's banner (None where
    nvidia-smi is missing or says nothing)."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    found = {key: re.search(rf"{label}:\s*([0-9][0-9.]*)", out) for key, label in
             (("driver", "Driver Version"), ("driver_cuda", "CUDA Version"))}
    return {key: match.group(1) if match else None for key, match in found.items()}


def device_info(device: str) -> dict[str, Any]:
    import torch

    if device == "cuda":
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        # driver: NVIDIA driver version; driver_cuda: the newest CUDA it runs; the torch build's CUDA is torch_build
        return {"type": "cuda", "name": props.name, "count": torch.cuda.device_count(),
                "memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}",
                **nvidia_driver()}
    return {"type": "cpu", "name": _cpu_model(), "count": 1, "threads": torch.get_num_threads()}


def fingerprint(device: str = "cpu") -> dict[str, Any]:
    """A JSON-safe description of software, hardware and harness source for one run."""
    import torch

    cpu = _cpu_model()
    memory = _memory_gib()
    packages = package_versions()
    dev = device_info(device)
    cores = os.cpu_count()
    accelerator = dev["name"] if dev["type"] == "cuda" else f"{cpu} x{dev['threads']}t"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": packages,
        "torch_build": {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device == "cuda"
                        else None, "mkldnn": torch.backends.mkldnn.is_available()},
        "device": dev,
        "cpu": {"model": cpu, "logical_cores": cores, "memory_gib": memory},
        "machine_id": _machine_id(cpu, memory),
        "device_class": _slug(f"{dev['type']}-{accelerator}"),
        "env_key": env_key(packages),
        "harness": _harness_source(),
        "hf_offline": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")},
    }


def env_key(packages: dict[str, str | None] | None = None) -> str:
    """Readable and unique: 'tf5.24.0-torch2.13.0-<hash of every package version and python>'."""
    packages = packages or package_versions()
    stack = "|".join(f"{k}={v}" for k, v in sorted(packages.items())) + f"|py={platform.python_version()}"
    torch_version = (packages.get("torch") or "none").split("+")[0]
    return f"tf{packages.get('transformers')}-torch{torch_version}-{_short_hash(stack, 8)}"
