"""The ``mixnas models`` and ``mixnas inspect`` commands (registered by :func:`register`).

``mixnas models [--family F] [--json]`` counts every named model's params and MACs beside the figures its paper
reports (``--mixers``: the registered mixer families instead, the plugins' with the file that registered them); ``mixnas inspect NAME|ARCH.yaml [--latency] [--json] [--save-yaml FILE]`` prints one architecture per
stage (or one row per architecture of a collection such as a search's ``pareto.yaml``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mixnas.cli.format import MAC_NOTE, Progress, fmt_count, format_table, pct, rel_diff
from mixnas.errors import MixnasError
from mixnas.util import human


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` and ``inspect`` commands to the ``mixnas`` parser."""
    p = sub.add_parser("models", help="named models: reported params / MACs beside measured")
    p.add_argument("--family", help="only models of this token-mixer family")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--mixers", action="store_true", help="list the registered token and channel mixers instead "
                                                         "(built-in and from plugins) with their parameters")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("inspect", help="per-stage params, MACs and latency of a model or ArchConfig YAML")
    p.add_argument("model", help="a named model (see `mixnas models`) or an ArchConfig YAML file")
    p.add_argument("--image-size", type=int, help="override the input image size")
    p.add_argument("--num-classes", type=int, help="override the number of classes")
    p.add_argument("--in-channels", type=int, help="override the number of input channels")
    p.add_argument("--batch-size", type=int, default=1, help="batch size for latency (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="latency device")
    p.add_argument("--threads", type=int, help="CPU threads for latency (default: torch's current setting)")
    p.add_argument("--bf16", action="store_true", help="measure latency under bfloat16 autocast")
    p.add_argument("--latency", action="store_true", help="measure latency (per stage and total)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--save-yaml", metavar="FILE", help="write the resolved ArchConfig as YAML")
    p.set_defaults(func=cmd_inspect)


# -- models -------------------------------------------------------------------------------------------------


def model_rows(names: Sequence[str] | None = None, on_row: Callable[[dict], None] | None = None,
               on_start: Callable[[str], None] | None = None) -> list[dict]:
    """Reported vs measured params / MACs for named models (a pure data function; printing is separate).
    ``on_start(name)`` before each model is counted, ``on_row(row)`` after."""
    from mixnas.complexity import complexity
    from mixnas.registry import named_models

    models = named_models()
    rows = []
    for name in names or sorted(models):
        m = models[name]
        if on_start:
            on_start(name)
        cost = complexity(m.make())
        params_rel = rel_diff(cost.params, m.reported.params)
        macs_rel = rel_diff(cost.macs, m.reported.macs)
        ok = not m.reported.mismatches(cost.params, cost.macs)
        row = {"name": name, "family": m.family, "params": cost.params, "reported_params": m.reported.params,
               "params_rel": params_rel, "macs": cost.macs, "reported_macs": m.reported.macs,
               "macs_rel": macs_rel, "match": ok, "source": m.reported.source, "digest": cost.digest}
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def mixer_rows() -> list[dict]:
    """Every registered mixer family: role, name, declared parameters and the module that registered it (a
    plugin's file, or ``mixnas.mixers...`` for the built-ins)."""
    from mixnas.plugins import loaded_plugins
    from mixnas.registry import ROLES, mixer_families

    files = {p.module: p.file or p.module for p in loaded_plugins()}
    rows = []
    for role in ROLES:
        for name, fam in sorted(mixer_families(role).items()):
            module = fam.cls.__module__
            rows.append({"role": role, "name": name, "params": {p.name: p.describe() for p in fam.params},
                         "source": files.get(module, files.get(module.split(".")[0], module))})
    return rows


def cmd_mixers(args: argparse.Namespace) -> int:
    rows = mixer_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [(r["role"], r["name"], ", ".join(r["params"]) or "—", r["source"]) for r in rows]
    print(format_table(["role", "mixer", "parameters", "registered by"], table, [False] * 4))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from mixnas.registry import named_models

    if args.mixers:
        return cmd_mixers(args)
    names = sorted(n for n, m in named_models().items() if not args.family or m.family == args.family)
    if not names:
        raise MixnasError(f"no named model of family {args.family!r}")
    progress = Progress(len(names), "counting params and MACs (fvcore; cached after the first time)")
    rows = model_rows(names, on_row=progress.done, on_start=progress.start)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [(r["name"], r["family"], f"{r['params']:,}", fmt_count(r["reported_params"]), pct(r["params_rel"]),
              human(r["macs"]), human(r["reported_macs"]), pct(r["macs_rel"]), "yes" if r["match"] else "NO")
             for r in rows]
    print(format_table(["model", "family", "params", "reported", "Δ", "MACs", "reported", "Δ", "match"], table,
                       [False, False, True, True, True, True, True, True, False]))
    print(f"\n{MAC_NOTE}\nmatch: parameter count equal to the official implementation's, MACs within 1% of "
          "the reported figure (or within its rounding, e.g. 2.5G = 2.45-2.55G); —: not reported.")
    return 0 if all(r["match"] for r in rows) else 1


# -- inspect ------------------------------------------------------------------------------------------------


def inspect_rows(arch, latency: dict | None = None) -> list[dict]:
    """Per-stage rows of geometry, params, MACs (and latency when measured): pure data for ``inspect``."""
    from mixnas.complexity import complexity

    cost = complexity(arch)
    grids = arch.grids()
    info: dict[str, dict] = {"stem": {"grid": f"{grids[0][0]}x{grids[0][1]}", "dim": arch.stem.dim, "depth": "",
                                      "mixers": f"patch {arch.stem.patch_size}"}}
    for i, (s, g) in enumerate(zip(arch.stages, grids)):
        tm = ", ".join(f"{k}={v}" for k, v in s.token_mixer.params)
        cm = ", ".join(f"{k}={v}" for k, v in s.channel_mixer.params)
        info[f"stages.{i}"] = {"grid": f"{g[0]}x{g[1]}", "dim": s.dim, "depth": s.depth,
                               "mixers": f"{s.token_mixer.name}({tm}) + {s.channel_mixer.name}({cm})"}
    rows = []
    for r in cost.rows:
        row = {"name": r.name, **info.get(r.name, {"grid": "", "dim": "", "depth": "", "mixers": ""}),
               "params": r.params, "macs": r.macs}
        if latency is not None and r.name in latency:
            row["latency"] = latency[r.name]
        rows.append(row)
    return rows


def inspect_collection(path: str, entries: list) -> int:
    """One row per architecture of a collection file (a search's ``pareto.yaml``)."""
    from mixnas.complexity import complexity

    table = []
    for label, arch, meta in entries:
        cost = complexity(arch)
        objectives = meta.get("objectives") or {}
        table.append([label, arch.digest(), f"{cost.params:,}", human(cost.macs),
                      " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in objectives.items())])
    print(f"{path}: {len(entries)} architectures; inspect one as {path}#ENTRY")
    print(format_table(["entry", "digest", "params", "MACs", "objectives"], table, [False, False, True, True, False]))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from mixnas.models import load_arch_entries, looks_like_file, resolve_arch, split_ref
    from mixnas.plugins import yaml_header

    if looks_like_file(args.model):
        path, entry = split_ref(args.model)
        entries = load_arch_entries(path) if entry is None else None
        if entries is not None and len(entries) != 1:
            return inspect_collection(path, entries)
    arch = resolve_arch(args.model, image_size=args.image_size, in_channels=args.in_channels,
                        num_classes=args.num_classes)
    if args.batch_size < 1:
        raise MixnasError(f"--batch-size must be at least 1, found {args.batch_size}")
    latency, total_latency = _measure_latency(arch, args) if args.latency else (None, None)
    rows = inspect_rows(arch, latency)
    if args.json:
        out = {"arch": arch.to_dict(), "digest": arch.digest(),
               "rows": [{**r, "latency": r["latency"].to_dict() if "latency" in r else None} for r in rows],
               "latency": total_latency.to_dict() if total_latency else None}
        print(json.dumps(out, indent=2))
        return 0
    _print_inspect(arch, args.model, rows, latency is not None, total_latency)
    if args.save_yaml:
        with open(args.save_yaml, "w") as fh:
            fh.write(yaml_header() + arch.to_yaml())
        print(f"wrote {args.save_yaml}")
    return 0


def _measure_latency(arch, args: argparse.Namespace) -> tuple[dict, Any]:
    """Latency of every stage, and of the whole model, as ``inspect --latency`` settings say."""
    from mixnas.latency import measure_latency, stage_latencies

    kw = dict(batch_size=args.batch_size, device=args.device, threads=args.threads,
              dtype="bfloat16" if args.bf16 else "float32")
    print(f"measuring latency on {args.device} (batch {args.batch_size}) ...", file=sys.stderr)
    return dict(stage_latencies(arch, **kw)), measure_latency(arch, **kw)


def _print_inspect(arch, ref: str, rows: list[dict], with_latency: bool, total_latency: Any) -> None:
    """The per-stage table of ``inspect``, with a total row and the notes on how MACs and latency were counted."""
    inp = arch.input
    print(f"{arch.name or ref}  digest {arch.digest()}  layout {arch.layout}  "
          f"input {inp.in_channels}x{inp.image_size}x{inp.image_size}  classes {inp.num_classes}")
    headers = ["part", "grid", "dim", "depth", "params", "MACs"]
    right = [False, True, True, True, True, True]
    if with_latency:
        headers += ["latency ms", "IQR ms"]
        right += [True, True]
    headers.append("mixers")
    right.append(False)
    table = []
    for r in rows:
        row = [r["name"], r["grid"], r["dim"], r["depth"], f"{r['params']:,}", human(r["macs"])]
        if with_latency:
            lat = r.get("latency")
            row += [f"{lat.median_ms:.3f}" if lat else "", f"{lat.iqr_ms:.3f}" if lat else ""]
        row.append(r["mixers"])
        table.append(row)
    total = ["total", "", "", arch.depth, f"{sum(r['params'] for r in rows):,}", human(sum(r["macs"] for r in rows))]
    if total_latency is not None:
        total += [f"{total_latency.median_ms:.3f}", f"{total_latency.iqr_ms:.3f}"]
    total.append("")
    table.append(total)
    print(format_table(headers, table, right))
    print(f"\n{MAC_NOTE}")
    if total_latency is not None:
        t = total_latency
        print(f"Latency: median of {t.runs} timed runs after warm-up, {t.device}, batch {t.batch_size}, "
              f"{t.threads} thread(s), {t.dtype}; IQR = q3 - q1. Stage rows are timed separately.")
