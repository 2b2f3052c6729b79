"""The ``mixnas`` command line.

Every user mistake is a :class:`~mixnas.errors.MixnasError`: it is printed as one line on stderr and the
command exits with status 2. Anything else is a bug and keeps its traceback.

Every command takes ``--plugin PATH_OR_MODULE`` (repeatable, added here to each command's parser): the modules
that register mixers, models or datasets of the user's own (:mod:`mixnas.plugins`) are loaded before the
command runs, so that any file it reads may name them.

This package's modules: :mod:`~mixnas.cli.format` (tables, percentages, progress, the parser class) is shared;
each command group has a module with a ``register(sub)`` that adds its commands: :mod:`~mixnas.cli.models`
(``models``, ``inspect``), :mod:`~mixnas.cli.space`, :mod:`~mixnas.cli.train` (``train``, ``proxy``),
:mod:`~mixnas.cli.search` (with :mod:`~mixnas.cli.resume`), :mod:`~mixnas.cli.export`,
:mod:`~mixnas.cli.dashboard`, :mod:`~mixnas.cli.study`, :mod:`~mixnas.cli.bench` and :mod:`~mixnas.cli.check`
(``check-mixer``). They import the shared modules, never this one; this one imports them when the parser is
built, so that importing ``mixnas.cli`` stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mixnas import __version__
from mixnas.cli.format import Parser
from mixnas.errors import MixnasError

# The command modules, in the order their commands appear in `mixnas --help`.
COMMAND_MODULES = ("models", "check", "space", "train", "search", "export", "dashboard", "study", "bench")


PLUGIN_HELP = ("a module that registers mixers, named models or datasets: a .py file (relative to the working "
               "directory) or an importable module name; repeatable (docs/search.md#plugins-bring-your-own-mixer)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mixnas", description="Design-space exploration and NAS for vision MLPs.")
    parser.add_argument("--version", action="version", version=f"mixnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"mixnas.cli.{name}").register(sub)
    for command in _commands(parser):
        command.add_argument("--plugin", action="append", dest="plugins", metavar="PATH_OR_MODULE",
                             help=PLUGIN_HELP)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command's own parser (``train``, ``space check``, ...): the leaves below ``parser``."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for child in dict.fromkeys(a.choices.values()) for leaf in _commands(child)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "plugins", None):  # before the command reads any file that names their mixers
            from mixnas.plugins import load_plugins

            load_plugins(args.plugins, where="--plugin")
        return args.func(args)
    except MixnasError as err:
        line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())  # one line, always
        print(f"mixnas {args.command}: error: {line}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mixnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to `head` or a pager that closed early: not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        except (OSError, ValueError):
            pass  # stdout is not a file descriptor (an embedding caller's stream)
        return 0


__all__ = ["build_parser", "main"]
