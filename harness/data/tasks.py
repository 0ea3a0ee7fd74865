"""Task lookup: a built-in task by name, or a user task file by path (`get_task`). The specs themselves are in
taskspec.py (re-exported here), the task-file reader in taskfile.py.
"""

from __future__ import annotations

from harness.data import taskfile
from harness.data.taskspec import (ALIASES, BUILTIN_TASK_NAMES, GLUE_HUB_PATH, GLUE_TASK_NAMES, TASK_FILE_SUFFIXES,
                                   TASKS, TaskSpec, TsvLayout, UserSource)
from harness.errors import UnknownNameError

__all__ = ["ALIASES", "BUILTIN_TASK_NAMES", "GLUE_HUB_PATH", "GLUE_TASK_NAMES", "TASK_FILE_SUFFIXES", "TASKS",
           "TaskSpec", "TsvLayout", "UserSource", "get_task"]


def get_task(name: str) -> TaskSpec:
    """Look a task up by name (case-insensitive; 'sst-2' and 'sts-b' spellings accepted), or read the user task
    file at a path ending in .toml, .yaml or .yml (validated now, cached per file version)."""
    if name.strip().lower().endswith(TASK_FILE_SUFFIXES):
        return taskfile.load(name.strip())
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    try:
        return TASKS[key]
    except KeyError:
        raise UnknownNameError("task", name, TASKS) from None
