"""`harness merge DIR... --output DIR`: combine the record folders of shards or machines into one result set.

Every run record and throughput measurement lands once in OUTPUT, at the path its identity gives it; the same run
twice with equal content is kept once, with different content it is an error naming both files (and nothing is
written). The merged folder is one side of `harness compare` like any other.
"""

from __future__ import annotations

import argparse
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
    from harness.store.merge import merge

    merged, written = merge(args.sources, args.output)
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
    return 0
