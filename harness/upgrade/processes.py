"""The sides' processes during an upgrade check: run side by side, their progress said whole, and all stopped at
once on an interrupt (no side starts another process after it)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import HarnessError
from harness.upgrade.sides import Side
from harness.upgrade.venvs import PROJECT

T = TypeVar("T")

_STOPPING = threading.Event()  # set on Ctrl-C: no side starts another process
_LIVE: set[subprocess.Popen] = set()  # the sides' processes running now
_LIVE_LOCK = threading.Lock()


def both(sides: Sequence[Side], work: Callable[[Side], T]) -> list[T]:
    """`work` for each side at once (two processes on two cores), results in side order. An interrupt stops both
    sides at once: every running process is terminated and none is started after it."""
    pool = ThreadPoolExecutor(max_workers=len(sides))
    try:
        return list(pool.map(work, sides))
    except BaseException:
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def stop_all() -> None:
    """No side starts another process; every running one is terminated."""
    _STOPPING.set()
    with _LIVE_LOCK:
        for process in _LIVE:
            if process.poll() is None:
                process.terminate()


def track(process: subprocess.Popen, *, live: bool = True) -> None:
    """A side's process (a worker) that an interrupt must stop too (`live`), or no longer (it has ended)."""
    if live and _STOPPING.is_set():
        process.terminate()
        raise KeyboardInterrupt
    with _LIVE_LOCK:
        if live:
            _LIVE.add(process)
        else:
            _LIVE.discard(process)


def set_progress(say_line: Callable[[str], None]) -> None:
    """Where the sides' progress lines go from now on; a new check may run (an earlier interrupt is forgotten)."""
    global _progress
    _progress = say_line
    _STOPPING.clear()


_PROGRESS_LOCK = threading.Lock()
_progress: Callable[[str], None] = lambda line: None  # where the sides' progress lines go (run_check sets it)
_CELL_LINE = re.compile(r"^\[\d+/\d+\] \S+$")  # `harness run`: one line as each cell starts
_PYTEST_LINE = re.compile(r"\[\s*(\d+)%\]$")  # `pytest -v`: the percentage at the end of each test's line
PYTEST_STEP = 25  # the suites' progress is said every this many percent


def say(line: str) -> None:
    """A progress line from either side's thread, whole."""
    with _PROGRESS_LOCK:
        _progress(line)


def run_in(side: Side, args: Sequence[str], log: Path, *, what: str = "", timeout: int = 3600,
           **env: str) -> subprocess.CompletedProcess:
    """`python ARGS` in the side's venv (this checkout, the side's patch, `env` added), output kept in `log`.
    Progress as it runs: each cell `harness run` starts, pytest's percentage, and `what` when it ends."""
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        process = subprocess.Popen([str(side.venv.python), *args], cwd=PROJECT, env=side.environ(**env),
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        with _LIVE_LOCK:
            _LIVE.add(process)
        deadline = threading.Timer(timeout, process.kill)
        deadline.start()
        lines: list[str] = []
        shown = -PYTEST_STEP  # the last pytest percentage said
        try:
            with process.stdout:  # type: ignore[union-attr]
                for line in process.stdout:  # type: ignore[union-attr]
                    lines.append(line)
                    shown = _echo(side, line.rstrip(), time.perf_counter() - began, shown)
            process.wait()
        finally:
            deadline.cancel()
            with _LIVE_LOCK:
                _LIVE.discard(process)
        errors.seek(0)
        stderr = errors.read()
    if process.returncode == -9 and time.perf_counter() - began >= timeout:
        stderr += f"\nharness: stopped after {timeout} s"
    stdout = "".join(lines)
    log.write_text(f"$ python {' '.join(args)}\n{stdout}\n{stderr}", encoding="utf-8")
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    if what:
        outcome = "done" if process.returncode == 0 else f"exit {process.returncode}, see {log.name}"
        say(f"  {side.name}: {what} {outcome} ({time.perf_counter() - began:.0f} s)")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _echo(side: Side, line: str, elapsed: float, shown: int) -> int:
    """Say a progress line of the side's process, if it is one; returns the pytest percentage said last (every
    PYTEST_STEP points, not every test)."""
    if _CELL_LINE.match(line):
        say(f"  {side.name}: cell {line} (at {elapsed:.0f} s)")
    elif (found := _PYTEST_LINE.search(line)) is not None:
        percent = int(found.group(1))
        if percent >= shown + PYTEST_STEP or (percent == 100 and shown < 100):
            say(f"  {side.name}: suites {percent} % (at {elapsed:.0f} s)")
            return percent
    return shown


def json_of(done: subprocess.CompletedProcess, what: str, side: Side) -> Any:
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"{what} failed on the {side.name} side: {tail[0]} (see {side.name}-*.log)")
    return json.loads(lines[-1])
