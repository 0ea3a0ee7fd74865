"""`harness overhead`: the harness against the plain course walkthrough on the same cell. `measure` runs both and
compares; `walkthrough` is the plain side, run as a script, and imports nothing of the harness."""
