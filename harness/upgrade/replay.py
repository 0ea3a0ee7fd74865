"""Replay a suite over several released library versions: one venv each, one table version x test.

Each venv runs `pytest suites/ -m MARKER` of this checkout and writes JUnit XML; the table says, per test function,
how its cases ended on each version (passed, failed, a known defect's xfail, skipped), so it shows which real
releases the harness would have caught.
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.reporting import markdown as md
from harness.upgrade.venvs import PROJECT, Venv

OUTCOMES = ("failed", "xfailed", "passed", "skipped")  # the worst first: a cell shows its worst outcome


@dataclass(frozen=True)
class SuiteOutcome:
    test: str  # the test function, e.g. "test_gradient_accumulation"
    case: str  # its parameters, e.g. "tiny-bert"
    outcome: str  # one of OUTCOMES
    message: str = ""


# Every run of this checkout's suites in another venv (replay, bisect, upgrade-check): hypothesis' ci profile
# (derandomized: every venv draws the same cases), no records written.
SUITE_ENV = {"HARNESS_HYPOTHESIS_PROFILE": "ci"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # replay: the suites' tiny models need no hub


def suite_args(marker: str, *extra: str, verbose: bool = False) -> list[str]:
    """The `python` arguments that run `pytest suites/ -m MARKER` (+ `extra` pytest arguments)."""
    return ["-m", "pytest", "suites/", "-m", marker, "-v" if verbose else "-q", "-p", "no:cacheprovider",
            "--harness-record-dir", "none", *extra]


def run_suite(venv: Venv, marker: str, *extra: str, env: dict[str, str] | None = None,
              timeout: int = 3600) -> subprocess.CompletedProcess:
    """The suites' tests of `marker` in `venv`, output captured."""
    return subprocess.run([str(venv.python), *suite_args(marker, *extra)], cwd=PROJECT,
                          env={**os.environ, **SUITE_ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def read_junit(path: Path) -> list[SuiteOutcome]:
    cases = []
    for element in ElementTree.parse(path).getroot().iter("testcase"):
        name = element.get("name", "")
        test, _, params = name.partition("[")
        failure = element.find("failure")
        error = element.find("error")
        skipped = element.find("skipped")
        if failure is not None or error is not None:
            found = failure if failure is not None else error
            cases.append(SuiteOutcome(test, params.rstrip("]"), "failed", (found.get("message") or "")[:300]))
        elif skipped is not None:
            outcome = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            cases.append(SuiteOutcome(test, params.rstrip("]"), outcome, known_defects(skipped.get("message") or "")[:300]))
        else:
            cases.append(SuiteOutcome(test, params.rstrip("]"), "passed"))
    return cases


# One known defect in a training test's xfail message (harness.invariants.defects.verdict): "  ID (transformers
# RANGE, LINK): summary"; the message ends with the first break seen.
_DEFECT_LINE = re.compile(r"^\s+(\S+) \(transformers ([^,]+(?:,[^,\s]+)*), (https://\S+)\):", re.MULTILINE)


def known_defects(message: str) -> str:
    """A training xfail message shortened to every defect it names (id, range, link) and the first break seen, so
    that a table cell keeps them all; any other message unchanged."""
    found = _DEFECT_LINE.findall(message)
    if not message.startswith("known defect(s)") or not found:
        return message
    first = message.partition("first break seen:")[2].strip()
    named = "; ".join(f"{name} ({versions}, {link})" for name, versions, link in found)
    return f"known defect(s) {named}; first break: {first}"


def row(case: SuiteOutcome, *, by_case: bool) -> str:
    return f"{case.test}[{case.case}]" if by_case and case.case else case.test


def summarize(cases: Sequence[SuiteOutcome], *, by_case: bool = False) -> dict[str, str]:
    """test function (or each parametrized case) -> "passed 6", "FAILED 2/6", "known defect 1/6", ..."""
    by_test: dict[str, Counter] = {}
    for case in cases:
        by_test.setdefault(row(case, by_case=by_case), Counter())[case.outcome] += 1
    out = {}
    for test, counts in by_test.items():
        total = sum(counts.values())
        worst = next(o for o in OUTCOMES if counts[o])
        label = {"failed": "FAILED", "xfailed": "known defect", "passed": "passed", "skipped": "skipped"}[worst]
        out[test] = f"{label} {counts[worst]}/{total}" if worst != "passed" else f"passed {total}"
    return out


def markdown(results: Mapping[str, Sequence[SuiteOutcome]], *, title: str, by_case: bool = False,
             walls: Mapping[str, float] | None = None) -> str:
    """Rows: test functions, or each parametrized case (`by_case`, e.g. one row per invariant); with `walls`, a last
    row of each version's wall seconds (environment and suite) and their total under the table."""
    versions = list(results)
    summaries = {v: summarize(cases, by_case=by_case) for v, cases in results.items()}
    tests = sorted({t for s in summaries.values() for t in s})
    rows = [{"test": test, **{v: summaries[v].get(test, "-") for v in versions}} for test in tests]
    if walls:
        rows.append({"test": "wall time (s)", **{v: f"{walls[v]:.0f}" if v in walls else "-" for v in versions}})
    lines = [f"### {title}", "", *md.table(["test", *versions], rows)]
    if walls:
        lines += ["", f"Whole replay: {sum(walls.values()):.0f} s over {len(walls)} release(s) (each: its cached "
                      "or newly built environment, then the suite)."]
    failures = [(v, c) for v, cases in results.items() for c in cases if c.outcome in ("failed", "xfailed")]
    if failures:
        lines += ["", "Failures and known defects:", ""]
        lines += [f"- {v} {c.test}[{c.case}] ({c.outcome}): {_one_line(c.message)}" for v, c in failures]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
