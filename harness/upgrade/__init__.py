"""Running the harness in other environments: cached venvs per library set, replays across releases."""
