"""What the ``mixnas`` command modules share: plain-text tables, signed percentages, the progress line of a
long count, and the argument parser class with its "did you mean" hints.

Number formatting itself (``human``, ``short_number``, ``duration``) lives in :mod:`mixnas.util`; this module
only lays numbers out. It imports no command module, so every command module can import it without a circle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

MAC_NOTE = "MACs: 1 MAC = 1 multiply-add (what MLP papers call FLOPs), counted by fvcore at batch size 1."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """A plain fixed-width text table (numbers right-aligned when ``right`` says so)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if rt else c.ljust(w) for c, w, rt in zip(r, widths, right)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def rel_diff(measured: float, reported: float | None) -> float | None:
    """The relative difference of a measured figure from a reported one; None where none was reported."""
    return None if not reported else (measured - reported) / reported


def pct(x: float | None) -> str:
    """A relative difference as a signed percentage, or a dash where there is none."""
    return "—" if x is None else f"{100 * x:+.2f}%"


def fmt_count(n: int | None) -> str:
    """An exact count with thousands separators, or a dash where there is none."""
    return "—" if n is None else f"{n:,}"


class Progress:
    """Progress on stderr while named models are counted (the first count of all of them takes about 20 s;
    later ones read the cache): on a terminal, one line rewritten with the model being counted; elsewhere
    (a log, a pipe) one line at the start, so that the wait is explained without filling the log."""

    def __init__(self, total: int, what: str, stream: Any = None):
        self.total, self.what, self.count = total, what, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = False

    def start(self, name: str) -> None:
        if self.tty:
            print(f"\r{self.what}: {self.count + 1}/{self.total} {name[:30]:<30}", end="", file=self.stream,
                  flush=True)
        elif not self.started:
            print(f"{self.what}: {self.total} models ...", file=self.stream, flush=True)
        self.started = True

    def done(self, row: dict) -> None:
        self.count += 1
        if self.tty and self.count == self.total:
            print(f"\r{self.what}: {self.total}/{self.total} done{' ' * 30}", file=self.stream, flush=True)


class Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a mistyped subcommand, choice or flag (argparse 3.11 has none); its
    subcommands' parsers are of this class too (``add_subparsers`` takes the parent's class)."""

    def error(self, message: str) -> NoReturn:
        import re

        from mixnas.errors import did_you_mean

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2)) or [c.strip() for c in choice.group(2).split(",")]
            message += did_you_mean(choice.group(1), options)
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [a for a in unknown.group(1).split() if a.startswith("-")]
            hints = [f"{f}{did_you_mean(f.split('=', 1)[0], self._known_flags())}" for f in flags]
            if any("did you mean" in h for h in hints):
                message = "unrecognized arguments: " + "; ".join(hints)
        super().error(message)

    def _known_flags(self) -> list[str]:
        """The flags of the subcommand being parsed (argparse reports unknown flags on the top parser)."""
        parser, argv = self, sys.argv[1:] if self._argv is None else self._argv
        for token in argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if subs and token in subs[0].choices:
                parser = subs[0].choices[token]
        return [o for a in parser._actions for o in a.option_strings]

    _argv: list[str] | None = None

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        self._argv = list(args) if args is not None else None
        return super().parse_args(args, namespace)
