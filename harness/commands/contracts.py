"""`harness contracts snapshot | diff`: record the installed transformers' output contract, or diff two records.

Handlers import harness.contracts (and with it transformers and torch) only when they run, so `harness --help`
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_SNAPSHOT_DIR = Path("results") / "contracts"


def add_parser(subparsers: Any) -> None:
    """Register `harness contracts snapshot | diff` on the harness CLI's subparsers."""
    parser = subparsers.add_parser("contracts", help="Trainer output contracts: record a snapshot, diff two",
                                   description="Record what Trainer.predict()/evaluate() return under the installed "
                                               "libraries, or list what changed between two snapshots.")
    actions = parser.add_subparsers(dest="contracts_action", required=True, metavar="ACTION")
    snap = actions.add_parser("snapshot", help="observe the installed transformers and write its contract snapshot")
    snap.add_argument("--output", metavar="DIR", default=str(DEFAULT_SNAPSHOT_DIR),
                      help=f"the folder that gets transformers-<version>.json. Default: {DEFAULT_SNAPSHOT_DIR}")
    snap.set_defaults(handler=cmd_snapshot)
    compare = actions.add_parser("diff", help="list every change from snapshot A to snapshot B")
    compare.add_argument("a", metavar="A", help="older snapshot: a .json file or a transformers version")
    compare.add_argument("b", metavar="B", help="newer snapshot: a .json file or a transformers version")
    compare.add_argument("--dir", metavar="DIR", default=str(DEFAULT_SNAPSHOT_DIR),
                         help=f"where versions given as A/B are looked up. Default: {DEFAULT_SNAPSHOT_DIR}")
    compare.add_argument("--exit-code", action="store_true", help="exit with 1 when the snapshots differ")
    compare.set_defaults(handler=cmd_diff)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from harness import contracts
    from harness.core.compat import TRANSFORMERS_VERSION
    from harness.suite import options

    output = contracts.snapshot_path(options.writable_folder(Path(args.output), "--output"),
                                     str(TRANSFORMERS_VERSION))
    with contracts.session() as lab:
        payload = contracts.observe(lab)
    contracts.write_snapshot(payload, output)
    print(f"contract of transformers {TRANSFORMERS_VERSION}: {len(payload['situations'])} situations, "
          f"{sum(len(v) for v in payload['signatures'].values())} arguments -> {output}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from harness import contracts

    old = contracts.load_snapshot(contracts.resolve_snapshot(args.a, Path(args.dir)))
    new = contracts.load_snapshot(contracts.resolve_snapshot(args.b, Path(args.dir)))
    if contracts.resolve_snapshot(args.a, Path(args.dir)) == contracts.resolve_snapshot(args.b, Path(args.dir)):
        print(f"note: A and B are the same snapshot ({args.a}): nothing can differ", file=sys.stderr)
    changes = contracts.diff(old, new)
    print(contracts.render_diff(old, new, changes))
    return 1 if changes and args.exit_code else 0
