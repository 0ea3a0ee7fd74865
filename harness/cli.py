"""`harness COMMAND`: builds the parser from the command modules and turns errors into one line and an exit code."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from harness.errors import HarnessError

# Each module has add_parser(subparsers) and imports torch/transformers only inside its handlers.
COMMANDS = ("harness.commands.run", "harness.commands.listings", "harness.commands.contracts",
            "harness.commands.compare", "harness.commands.report", "harness.commands.replay",
            "harness.commands.upgrade_check", "harness.commands.bisect", "harness.commands.merge",
            "harness.commands.overhead", "harness.commands.history")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose refusal is the error and one line pointing at --help, not the whole usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C in every command: files being written are removed, scratch folders too, and
    the command says what it finished. (Only the main thread can take signals: elsewhere, nothing changes.)"""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_term = signal.signal(signal.SIGTERM, interrupt)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Fine-tuning benchmark and regression harness for "
                     "transformers.Trainer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            return args.handler(args)
    except HarnessError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nharness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
