"""The ``mixnas space`` commands (registered by :func:`register`).

``mixnas space check SPACE.yaml [--draws N] [--seed S]`` validates a search space as ``mixnas search`` does
before launch and describes it (parameters, size, share of invalid draws and their causes);
``mixnas space sample SPACE.yaml [-n N] [--latency] [--out DIR]`` writes N valid candidates as ArchConfig YAML;
``mixnas space from-mixer TARGET [--out FILE]`` writes a space around one mixer (:mod:`mixnas.mixer_space`).
"""

from __future__ import annotations

import argparse
import sys

from mixnas.cli.format import MAC_NOTE, format_table
from mixnas.errors import MixnasError
from mixnas.util import human


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``space check`` and ``space sample`` to the ``mixnas`` parser."""
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
    p = ssub.add_parser("from-mixer", help="write a search space around a mixer: every declared parameter a "
                                           "dimension, on a small isotropic backbone (docs/spaces.md)")
    p.add_argument("target", help="FILE.py:NAME, module:NAME or a registered NAME (the registered or class name)")
    p.add_argument("--out", help="the YAML file to write (default NAME_space.yaml)")
    p.add_argument("--role", choices=("token", "channel"), help="for a name registered as both (moe)")
    p.add_argument("--dataset", default="fashion-mnist", help="the task's dataset, a registered name: cifar10, "
                                                               "cifar100, digits, fashion-mnist (default), "
                                                               "imagefolder, mnist, or a plugin's")
    p.add_argument("--num-classes", type=int, help="classes (default: the dataset's; needed for imagefolder)")
    p.add_argument("--image-size", type=int, help="input size, a multiple of 8 (default: the dataset's); the stem's "
                                                  "patch is image_size / 8")
    p.set_defaults(func=cmd_space_from_mixer)


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


def cmd_space_from_mixer(args: argparse.Namespace) -> int:
    from mixnas.mixer_space import dimensions, space_task, write_space
    from mixnas.space import load_space

    task = space_task(args.dataset, args.num_classes, args.image_size)
    command = " ".join([f"mixnas space from-mixer {args.target}"]
                       + [f"--{flag.replace('_', '-')} {getattr(args, flag)}"
                          for flag in ("out", "dataset", "num_classes", "image_size")
                          if getattr(args, flag) is not None
                          and (flag != "dataset" or args.dataset != "fashion-mnist")])
    path, family = write_space(args.target, args.out, command, role=args.role, task=task)
    space = load_space(path)
    dims = dimensions(family)
    kept = [d.param for d in dims if d.value is None]
    size = space.size()
    print(f"{path}: space {space.name!r} around {family.role} mixer {family.name!r}: "
          f"{len(dims) - len(kept)} of its {len(dims)} parameters"
          + (f" (left at their width-dependent defaults: {', '.join(kept)})" if kept else "")
          + ", the backbone's width and depth, the channel MLP ratio; "
          + (f"{size:,} parameter assignments" if size is not None else "float ranges included"))
    print(f"next: mixnas space check {path}; mixnas search --space {path}")
    return 0


def _tree(rows: list[tuple[str, str]]) -> str:
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join(f"  {n.ljust(width)}  {d}" for n, d in rows) or "  (none)"


def cmd_space_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixnas.checks import check_candidate
    from mixnas.optuna_io import sample_candidates
    from mixnas.plugins import yaml_header
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
        path.write_text(f"# sampled from {args.file} (seed {args.seed}); params: {params}\n" + yaml_header()
                        + arch.to_yaml())
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

