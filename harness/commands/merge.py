"""`harness merge DIR... --output DIR`: combine the record folders of shards or machines into one result set.

Every run record and throughput measurement lands once in OUTPUT, at the path its identity gives it; the same run
twice with equal content is kept once, with different content it is an error naming both files (and nothing is
written). The merged folder is one side of `harness compare` like any other.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    merge = subparsers.add_parser(
        "merge", help="combine shard record folders into one result set",
        description="Combine the record folders written by `harness run --shard I/N --output DIR` or `pytest "
                    "suites/ --harness-shard I/N --harness-record-dir DIR` (or by several machines) into one: every "
                    "run once, conflicting duplicates refused.")
    merge.add_argument("sources", nargs="+", metavar="DIR",
                       help="record folders (or record files) to combine, e.g. the shards' --output folders")
    merge.add_argument("--output", required=True, metavar="DIR",
                       help="the combined folder, created if missing; records already there take part (a second "
                            "merge adds only what is new)")
    merge.set_defaults(handler=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from harness.store.merge import MergeInterrupted, merge

    try:
        merged, written = merge(args.sources, args.output)
    except MergeInterrupted as stopped:
        print(f"\nharness merge: {stopped}", file=sys.stderr)
        return 130
    kept = f"{merged.runs} run record{'s' if merged.runs != 1 else ''}"
    if merged.measurements:
        kept += f" and {merged.measurements} throughput measurement{'s' if merged.measurements != 1 else ''}"
    notes = [f"{len(written)} written", f"{len(merged.items) - len(written)} already there"]
    if merged.duplicates:
        notes.append(f"{merged.duplicates} identical duplicate{'s' if merged.duplicates != 1 else ''} dropped")
    if merged.left_out:
        notes.append(f"{len(merged.left_out)} file{'s' if len(merged.left_out) != 1 else ''} that hold no run "
                     "result left out (verdict tables, baselines, snapshots)")
    print(f"harness merge: {kept} in {args.output} ({'; '.join(notes)})")
    repeated = repeated_cells(item.payload for item in merged.items.values() if "run_id" in item.payload)
    if repeated:
        shown = ", ".join(f"{cell} ({n} runs)" for cell, n in repeated[:3]) + (" ..." if len(repeated) > 3 else "")
        print(f"note: {len(repeated)} cell(s) ran more than once in one environment: {shown}. compare and report "
              "judge the newest run of each; if the runs disagree, find out why before trusting either.",
              file=sys.stderr)
    return 0


def repeated_cells(records: Any) -> list[tuple[str, int]]:
    """(cell, runs) for each cell with several runs in one environment, most first."""
    from collections import Counter

    counts = Counter((r["cell"], (r.get("env") or {}).get("env_key")) for r in records)
    return sorted(((cell, n) for (cell, _), n in counts.items() if n > 1), key=lambda item: (-item[1], item[0]))
