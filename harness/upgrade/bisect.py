"""Which release flipped a test? Binary search over the releases between a good and a bad version.

`search` is pure: an ordered list of versions from the good end to the bad end and a probe telling a version's
outcome; it keeps "the good end's outcome at lo, the other at hi" and halves until they are neighbours, so n
releases cost about log2(n) probes (the two ends are probed first, to check that the outcome does flip).
The good end may be the newer one: then it finds the release that fixed something.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from harness.errors import HarnessError


@dataclass
class Bisection:
    last_good: str
    first_bad: str
    probes: dict[str, bool] = field(default_factory=dict)  # version -> passed, in probing order
    between: int = 0  # releases strictly between the two ends

    def describe(self, what: str) -> str:
        return (f"{what}: last good {self.last_good}, first bad {self.first_bad} ({len(self.probes)} probes over "
                f"{self.between + 2} releases)")


def search(versions: Sequence[str], passes: Callable[[str], bool]) -> Bisection:
    """`versions` ordered from the good end to the bad end; `passes(version)` runs the test there."""
    if len(versions) < 2:
        raise HarnessError("bisect needs two different versions: pass --good and --bad releases that differ.")
    probes: dict[str, bool] = {}

    def probe(version: str) -> bool:
        if version not in probes:
            probes[version] = passes(version)
        return probes[version]

    good, bad = probe(versions[0]), probe(versions[-1])
    if good == bad:
        outcome = "passes" if good else "fails"
        raise HarnessError(f"the test {outcome} on both {versions[0]} and {versions[-1]}: nothing flips between "
                           "them. Choose ends where it passes on --good and fails on --bad.")
    lo, hi = 0, len(versions) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(versions[mid]) == good:
            lo = mid
        else:
            hi = mid
    return Bisection(versions[lo], versions[hi], probes, len(versions) - 2)


def check_versions(given: Sequence[str]) -> None:
    """Every version given (--good, --bad, --versions) is a version, checked before the index is asked."""
    for text in given:
        try:
            Version(text)
        except InvalidVersion:
            raise HarnessError(f"{text!r} is not a version: --good, --bad and --versions take release versions "
                               "such as 4.57.6.") from None


def between(releases: Sequence[str], good: str, bad: str) -> list[str]:
    """The final releases from `good` to `bad` inclusive, in that direction (pre-releases left out)."""
    try:
        ends = Version(good), Version(bad)
    except InvalidVersion as err:
        raise HarnessError(f"{err}: --good and --bad take release versions such as 4.57.6.") from None
    low, high = min(ends), max(ends)
    chosen = sorted({Version(r) for r in releases if not Version(r).is_prerelease and low <= Version(r) <= high})
    missing = [str(v) for v in ends if v not in chosen]
    if missing:
        raise HarnessError(f"{', '.join(missing)} is not a release in the list; known releases in that range: "
                           f"{', '.join(map(str, chosen)) or 'none'}.")
    ordered = [str(v) for v in chosen]
    return ordered if ends[0] < ends[1] else ordered[::-1]


def released_versions(package: str) -> list[str]:
    """Every release of `package` the package index offers (`pip index versions`, with pip's configuration)."""
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package], capture_output=True,
                          text=True, timeout=300)
    found = re.search(r"Available versions: (.+)", done.stdout)
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"could not list the releases of {package} ({tail[0]}); pass them with --versions.")
    return [v.strip() for v in found.group(1).split(",")]
