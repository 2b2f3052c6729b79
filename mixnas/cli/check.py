"""The ``mixnas check-mixer`` command (registered by :func:`register`).

``mixnas check-mixer TARGET [--role token|channel] [--fast] [--skip CHECK] [--json]`` runs the mixer contract
(:mod:`mixnas.contract`, the checks every built-in family passes in the tests) on one mixer and prints a table
of what passed, with the mixer's params and MACs at the reference size. ``TARGET`` is a registered ``NAME``,
``FILE.py:NAME`` or ``pkg.module:NAME`` (the plugin is loaded first); ``NAME`` is the registered name or the
class name. Exit status 0 when every applicable check passes, 1 when one fails, 2 for a mistake in the target.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mixnas.cli.format import MAC_NOTE, fmt_count, format_table
from mixnas.errors import MixnasError, did_you_mean
from mixnas.util import human

# mixnas.registry.ROLES and mixnas.contract.CHECKS, spelled here so that building the parser imports no torch
ROLE_CHOICES = ("token", "channel")
CHECK_NAMES = ("defaults", "shape", "determinism", "fvcore", "gradients", "parameters", "compile", "onnx")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``check-mixer`` command to the ``mixnas`` parser."""
    p = sub.add_parser("check-mixer", help="run the mixer contract (shape, determinism, MACs, gradients, parameters, "
                                           "torch.compile, ONNX) on a registered or plugin mixer")
    p.add_argument("target", metavar="TARGET",
                   help="NAME, FILE.py:NAME or pkg.module:NAME; NAME is the registered mixer name or its class name")
    p.add_argument("--role", choices=ROLE_CHOICES, help="token or channel, when NAME is registered as both")
    p.add_argument("--fast", action="store_true",
                   help="skip the torch.compile check (30-40 s the first time on a CPU)")
    p.add_argument("--skip", action="append", default=[], metavar="CHECK",
                   help="a check not to run (repeatable; comma-separated lists too): " + ", ".join(CHECK_NAMES))
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_check_mixer)


def cmd_check_mixer(args: argparse.Namespace) -> int:
    from mixnas import contract

    skip = _skipped(args.skip, args.fast, contract.CHECKS)
    family = resolve_target(args.target, args.role)
    if not args.json:
        slow = "" if "compile" in skip else " (torch.compile takes 30-40 s the first time; --fast skips it)"
        print(f"checking {family.role} mixer {family.name!r}{slow} ...", file=sys.stderr, flush=True)
    results = contract.check_mixer(family, skip)
    ref = contract.reference(family)
    failed = [r.name for r in results if r.failed]
    if args.json:
        print(json.dumps(_as_json(family, results, ref, failed), indent=2))
    else:
        print(_report(family, results, ref, failed))
    return 1 if failed else 0


def _skipped(values: list[str], fast: bool, known: tuple[str, ...]) -> dict[str, str]:
    """``--skip`` and ``--fast`` as check name -> the reason shown in the table."""
    out = {"compile": "--fast"} if fast else {}
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            if name not in known:
                raise MixnasError(f"--skip {name!r} is not a check{did_you_mean(name, known)}; "
                                  f"checks: {', '.join(known)}")
            out[name] = "--skip"
    return out


def resolve_target(target: str, role: str | None) -> Any:
    """The :class:`~mixnas.registry.MixerFamily` that ``target`` names (:func:`mixnas.registry.find_mixer`)."""
    from mixnas.registry import find_mixer

    return find_mixer(target, role)


def _report(family: Any, results: list[Any], ref: Any, failed: list[str]) -> str:
    """The table of checks, then params and MACs at the reference size and the verdict."""
    cls = f"{family.cls.__module__}.{family.cls.__qualname__}"
    head = f"{family.role} mixer {family.name!r} ({cls}), the mixer contract at {ref.describe()}"
    table = format_table(["check", "result", "detail"], [[r.name, r.status.value, r.detail] for r in results])
    macs = "—" if ref.macs is None else f"{human(ref.macs)} ({fmt_count(ref.macs)})"
    cost = f"at {ref.describe()}, batch 1: params {fmt_count(ref.params)}, MACs {macs}"
    counts = {s: sum(1 for r in results if r.status.value == s) for s in ("passed", "failed", "skipped")}
    verdict = ", ".join(f"{n} {s}" for s, n in counts.items())
    verdict += f": fails {', '.join(failed)}" if failed else ": every applicable check passes"
    return "\n".join([head, "", table, "", cost, MAC_NOTE, verdict])


def _as_json(family: Any, results: list[Any], ref: Any, failed: list[str]) -> dict[str, Any]:
    return {"role": family.role, "name": family.name,
            "class": f"{family.cls.__module__}.{family.cls.__qualname__}",
            "reference": {"dim": ref.dim, "grid": list(ref.grid), "batch": 1},
            "params": ref.params, "macs": ref.macs, "checks": [r.to_dict() for r in results],
            "passed": not failed}
