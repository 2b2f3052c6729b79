"""The ``mixnas`` command line.

Every user mistake is a :class:`~mixnas.errors.MixnasError`: it is printed as one line on stderr and the
command exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mixnas import __version__
from mixnas.errors import MixnasError
from mixnas.util import human

MAC_NOTE = "MACs: 1 MAC = 1 multiply-add (what MLP papers call FLOPs), counted by fvcore at batch size 1."


# -- formatting ---------------------------------------------------------------------------------------------


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
    return None if not reported else (measured - reported) / reported


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.2f}%"


# -- commands -----------------------------------------------------------------------------------------------


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


def cmd_models(args: argparse.Namespace) -> int:
    from mixnas.registry import named_models

    names = sorted(n for n, m in named_models().items() if not args.family or m.family == args.family)
    if not names:
        raise MixnasError(f"no named model of family {args.family!r}")
    progress = _Progress(len(names), "counting params and MACs (fvcore; cached after the first time)")
    rows = model_rows(names, on_row=progress.done, on_start=progress.start)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [(r["name"], r["family"], f"{r['params']:,}", _fmt_count(r["reported_params"]), pct(r["params_rel"]),
              human(r["macs"]), human(r["reported_macs"]), pct(r["macs_rel"]), "yes" if r["match"] else "NO")
             for r in rows]
    print(format_table(["model", "family", "params", "reported", "Δ", "MACs", "reported", "Δ", "match"], table,
                       [False, False, True, True, True, True, True, True, False]))
    print(f"\n{MAC_NOTE}\nmatch: parameter count equal to the official implementation's, MACs within 1% of "
          "the reported figure (or within its rounding, e.g. 2.5G = 2.45-2.55G); —: not reported.")
    return 0 if all(r["match"] for r in rows) else 1


def _fmt_count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


class _Progress:
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

    if looks_like_file(args.model):
        path, entry = split_ref(args.model)
        entries = load_arch_entries(path) if entry is None else None
        if entries is not None and len(entries) != 1:
            return inspect_collection(path, entries)
    arch = resolve_arch(args.model, image_size=args.image_size, in_channels=args.in_channels,
                        num_classes=args.num_classes)
    latency = total_latency = None
    if args.batch_size < 1:
        raise MixnasError(f"--batch-size must be at least 1, found {args.batch_size}")
    if args.latency:
        from mixnas.latency import measure_latency, stage_latencies

        kw = dict(batch_size=args.batch_size, device=args.device, threads=args.threads,
                  dtype="bfloat16" if args.bf16 else "float32")
        print(f"measuring latency on {args.device} (batch {args.batch_size}) ...", file=sys.stderr)
        latency = dict(stage_latencies(arch, **kw))
        total_latency = measure_latency(arch, **kw)
    rows = inspect_rows(arch, latency)
    if args.json:
        out = {"arch": arch.to_dict(), "digest": arch.digest(),
               "rows": [{**r, "latency": r["latency"].to_dict() if "latency" in r else None} for r in rows],
               "latency": total_latency.to_dict() if total_latency else None}
        print(json.dumps(out, indent=2))
        return 0
    inp = arch.input
    print(f"{arch.name or args.model}  digest {arch.digest()}  layout {arch.layout}  "
          f"input {inp.in_channels}x{inp.image_size}x{inp.image_size}  classes {inp.num_classes}")
    headers = ["part", "grid", "dim", "depth", "params", "MACs"]
    right = [False, True, True, True, True, True]
    if latency is not None:
        headers += ["latency ms", "IQR ms"]
        right += [True, True]
    headers.append("mixers")
    right.append(False)
    table = []
    for r in rows:
        row = [r["name"], r["grid"], r["dim"], r["depth"], f"{r['params']:,}", human(r["macs"])]
        if latency is not None:
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
    if args.save_yaml:
        with open(args.save_yaml, "w") as fh:
            fh.write(arch.to_yaml())
        print(f"wrote {args.save_yaml}")
    return 0


def cmd_space_check(args: argparse.Namespace) -> int:
    from mixnas.space import describe_space, invalid_share, launch_check, load_space

    if args.draws < 0:
        raise MixnasError(f"--draws must not be negative, found {args.draws}")
    space = load_space(args.file)
    plan = launch_check(space)  # what `mixnas search` checks before launch, the same function
    print(f"{args.file}: space {space.name!r} is valid (and passes the search's pre-launch checks)")
    t = space.task
    print(f"task: {plan.dataset}, {t.in_channels}x{t.image_size}x{t.image_size}, {t.num_classes} classes, "
          f"objectives {', '.join(map(str, plan.objectives))}, {plan.train['epochs']} epochs")
    c = space.constraints
    budgets = [f"{k} {human(v) if k != 'max_latency_ms' else v}" for k, v in
               (("max_params", c.max_params), ("max_macs", c.max_macs), ("max_latency_ms", c.max_latency_ms))
               if v is not None]
    if c.max_latency_ms is not None:
        budgets[-1] += f" ms ({c.latency_device}, batch {c.latency_batch_size}, threads {c.latency_threads})"
    print("constraints: " + (", ".join(budgets) if budgets else "none"))
    rows = describe_space(space)
    searched = [r for r in rows if not r[1].startswith("= ")]
    fixed = [r for r in rows if r[1].startswith("= ")]
    print(f"\nsearched parameters ({len(searched)}):")
    print(_tree(searched))
    print(f"\nfixed ({len(fixed)}):")
    print(_tree(fixed))
    size = space.size()
    print(f"\nspace size: {size:,} parameter assignments" if size is not None
          else "\nspace size: continuous (a float range is searched)")
    if args.draws:
        report = invalid_share(space, args.draws, args.seed)
        print(f"invalid draws: {report.invalid} of {report.draws} uniform random draws (seed {args.seed}, "
              f"{100 * report.share:.1f} %) break a validity rule; a search records them and trains none")
        for _key, n, example in report.reasons[:5]:
            print(f"  {n:>5}  {example}")
        if report.causes:
            print("  caused by (parameter values; invalid draws / draws with them):")
            for values, inv, n in report.causes:
                print(f"  {inv:>5} / {n:<5} " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    return 0


def _tree(rows: list[tuple[str, str]]) -> str:
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join(f"  {n.ljust(width)}  {d}" for n, d in rows) or "  (none)"


def cmd_space_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixnas.checks import check_candidate
    from mixnas.optuna_io import sample_candidates
    from mixnas.space import load_space

    if args.n < 1:
        raise MixnasError(f"-n must be at least 1, found {args.n}")
    space = load_space(args.file)
    out = Path(args.out or f"runs/samples/{space.name}-seed{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    rows, invalid = [], 0
    tty = sys.stderr.isatty()
    for params, arch, _err in sample_candidates(space, args.n, args.seed):
        if arch is None:
            invalid += 1
            continue
        chk = check_candidate(arch, space.constraints, latency=args.latency)
        path = out / f"{len(rows):03d}_{chk.digest}.yaml"
        path.write_text(f"# sampled from {args.file} (seed {args.seed}); params: {params}\n" + arch.to_yaml())
        row = [len(rows), chk.digest, f"{chk.params:,}", human(chk.macs)]
        if args.latency:
            row.append(f"{chk.latency_ms:.3f}")
        row += ["yes" if chk.feasible else "no: " + ",".join(chk.violated), _short(params), path.name]
        rows.append(row)
        if tty:
            print(f"\rsampled {len(rows)}/{args.n}", end="", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    if len(rows) < args.n:
        raise MixnasError(f"{args.file}: only {len(rows)} valid candidates in {len(rows) + invalid} draws")
    headers = ["#", "digest", "params", "MACs"] + (["latency ms"] if args.latency else []) + \
        ["feasible", "params (searched)", "file"]
    print(format_table(headers, rows, [True, False, True, True] + ([True] if args.latency else []) +
                       [False, False, False]))
    print(f"\n{len(rows)} valid candidates ({invalid} invalid draws skipped); ArchConfig YAML files in {out}/ "
          f"(usable by `mixnas inspect`).\n{MAC_NOTE}")
    return 0


def _short(params: dict) -> str:
    parts = []
    for k, v in params.items():
        key = k.removeprefix("arch.").replace("stages.", "").replace("token_mixer.", "tm.").replace(
            "channel_mixer.", "cm.")
        parts.append(f"{key}={v}")
    return " ".join(parts)


# -- entry point --------------------------------------------------------------------------------------------


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mixnas", description="Design-space exploration and NAS for vision MLPs.")
    parser.add_argument("--version", action="version", version=f"mixnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="named models: reported params / MACs beside measured")
    p.add_argument("--family", help="only models of this token-mixer family")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
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

    space = sub.add_parser("space", help="check and sample YAML search spaces")
    ssub = space.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    p = ssub.add_parser("check", help="validate a space file as a search would before launch; print its "
                                      "parameters, size and share of invalid draws")
    p.add_argument("file")
    p.add_argument("--draws", type=int, default=400,
                   help="uniform random draws for the share of invalid candidates (default 400; 0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seed of those draws (default 0)")
    p.set_defaults(func=cmd_space_check)
    p = ssub.add_parser("sample", help="print N valid candidates and write them as ArchConfig YAML files")
    p.add_argument("file")
    p.add_argument("-n", type=int, default=5, help="number of valid candidates (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency", action="store_true", help="also measure latency (constraints.latency settings)")
    p.add_argument("--out", help="folder for the YAML files (default runs/samples/SPACE-seedS)")
    p.set_defaults(func=cmd_space_sample)
    __import__("mixnas.train_cli", fromlist=["register"]).register(sub)  # the `train` and `proxy` commands
    __import__("mixnas.search_cli", fromlist=["register"]).register(sub)  # the `search` and `export` commands
    __import__("mixnas.dashboard_cli", fromlist=["register"]).register(sub)  # the `dashboard` command
    __import__("mixnas.study_cli", fromlist=["register"]).register(sub)  # `study check / run / report`
    __import__("mixnas.bench_cli", fromlist=["register"]).register(sub)  # `bench build / card`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
