"""A side's long-lived process: `python -m harness.upgrade.probe serve` in the side's venv pays torch's and
transformers' imports once and then answers the check's requests one at a time (API signatures, the course
walkthrough, your settings, training runs, throughput rounds).

The protocol is JSON lines: the check writes {"op": NAME, ...arguments}; the worker answers zero or more
{"progress": LINE} and then {"ok": RESULT} or {"error": MESSAGE}. Everything else the worker prints goes to its log.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.upgrade import processes
from harness.upgrade.sides import Side
from harness.upgrade.venvs import PROJECT


class Worker:
    def __init__(self, side: Side, log: Path) -> None:
        self.side, self.log = side, log
        self._log = open(log, "w", encoding="utf-8")
        self.process = subprocess.Popen([str(side.venv.python), "-m", "harness.upgrade.probe", "serve"],
                                        cwd=PROJECT, env=side.environ(), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        processes.track(self.process)
        self._lock = threading.Lock()  # one request at a time

    def ask(self, op: str, *, progress: Callable[[str], None] = lambda line: None, timeout: float = 3600,
            **arguments: Any) -> Any:
        """Send one request and wait for its answer (`progress` gets the worker's progress lines meanwhile); a
        HarnessError naming the log when the worker fails or stops, or takes longer than `timeout` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        with self._lock:
            deadline = threading.Timer(timeout, self.process.kill)
            deadline.start()
            try:
                try:
                    self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
                    self.process.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass  # said below, with the exit status
                for line in self.process.stdout:
                    answer = json.loads(line)
                    if "progress" in answer:
                        progress(answer["progress"])
                    elif "ok" in answer:
                        return answer["ok"]
                    else:
                        raise HarnessError(f"{op} failed on the {self.side.name} side: {answer['error']} "
                                           f"(see {self.log.name})")
            finally:
                deadline.cancel()
        code = self.process.wait()
        why = f"stopped after {timeout:.0f} s" if code == -9 else f"exit {code}"
        raise HarnessError(f"the {self.side.name} side's worker stopped during {op} ({why}); see {self.log.name}")

    def close(self) -> None:
        """Ask the worker to end; kill it if it does not within 30 s."""
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.write("\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        processes.track(self.process, live=False)
        self._log.close()
