"""`harness tasks | models | env`: what the harness knows about, and this environment's fingerprint."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    for name, handler, text in (("tasks", cmd_tasks, "list the tasks"), ("models", cmd_models, "list the models"),
                                ("env", cmd_env, "print this environment's fingerprint as JSON")):
        subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".").set_defaults(
            handler=handler)


def cmd_tasks(args: argparse.Namespace) -> int:
    from harness.data.tasks import TASKS

    for task in TASKS.values():
        kind = "regression" if task.is_regression else f"{task.num_labels} labels"
        print(f"{task.name:16} {task.benchmark:8} {kind:11} {task.primary_metric:21} {task.description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from harness.core.models import MODELS

    for spec in MODELS.values():
        offline = "offline" if spec.kind != "hub" else "hub"
        print(f"{spec.name:24} {spec.kind:9} {offline:8} {spec.source:40} {spec.description}")
    print("\nAlso accepted: any local checkpoint folder, or any hub id 'org/name'.")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from harness.machine.env import fingerprint
    from harness.core.runner import resolve_device

    print(json.dumps(fingerprint(resolve_device("auto")), indent=2))
    return 0
