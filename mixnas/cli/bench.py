"""The ``mixnas bench`` commands (registered by :func:`register`): tabular benchmarks of a space.

``mixnas bench build SPACE --out DIR`` trains every architecture of a discrete space (and the noise and
long-training runs) through Ray Tune into a table folder, resumable (:mod:`mixnas.tabular`);
``mixnas bench card DIR`` computes the table's noise and fidelity statistics and writes ``CARD.md``
(:mod:`mixnas.tabular_stats`).
"""

from __future__ import annotations

import argparse
import sys

from mixnas.errors import MixnasError

BUILD_FLAGS = ("epochs", "fraction", "noise_archs", "noise_seeds", "long_archs", "long_factor", "seed", "threads")


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="tabular benchmarks: build a table of a space, write its card",
                           description="mixnas-bench: tabular multi-fidelity benchmarks (see docs/benchmarks.md).")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")
    p = bsub.add_parser("build", help="train every architecture of a discrete space into a table (resumable)")
    p.add_argument("space", help="a search space YAML whose every parameter is discrete")
    p.add_argument("--out", required=True, help="the table folder (created; run again to resume)")
    p.add_argument("--epochs", type=int, help="epochs of the table's jobs (default 8)")
    p.add_argument("--fraction", type=float, help="share of the training split they use (default 0.1)")
    p.add_argument("--noise-archs", type=int, help="architectures trained at extra seeds (default 50)")
    p.add_argument("--noise-seeds", type=int, help="seeds per noise architecture, the table's included (default 3)")
    p.add_argument("--long-archs", type=int, help="architectures also trained on all the data (default 30)")
    p.add_argument("--long-factor", type=int, help="the long runs' epochs as a multiple of --epochs (default 4)")
    p.add_argument("--seed", type=int, help="seed of the noise / long samples and of the job order (default 0)")
    p.add_argument("--threads", type=int, help="torch threads (and Ray CPUs) per job (default 1)")
    p.add_argument("--only", default="table,noise,long",
                   help="which settings to run this time, comma-separated (default: all three)")
    p.add_argument("--limit", type=int, help="run at most this many pending jobs, then stop (a build in parts)")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--address", help="Ray cluster to run on (default: a local Ray on this machine's cores)")
    p.set_defaults(func=cmd_build)
    p = bsub.add_parser("card", help="noise, fidelity correlations and cost of a table; writes DIR/CARD.md")
    p.add_argument("table", help="a table folder")
    p.add_argument("--out", help="where to write the card (default DIR/CARD.md)")
    p.set_defaults(func=cmd_card)
    p = bsub.add_parser("dashboard", help="the whole table as a run folder (a simulated exhaustive sweep) and its "
                                          "mixnas dashboard report")
    p.add_argument("table", help="a table folder")
    p.add_argument("--out", help="run folder to write (default runs/TABLE-NAME-all)")
    p.add_argument("--objectives", default="top1:max,macs:min,latency_ms:min",
                   help="objectives of the run (default top1:max,macs:min,latency_ms:min)")
    p.add_argument("--screenshot", metavar="PNG", help="also render the report in headless Chromium to a PNG")
    p.set_defaults(func=cmd_dashboard)


def cmd_build(args: argparse.Namespace) -> int:
    from mixnas.tabular import SETTINGS, BuildSettings, build

    given = {k for k in BUILD_FLAGS if getattr(args, k) is not None}
    settings = BuildSettings(space=args.space, **{k: getattr(args, k) for k in given})
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    for s in only:
        if s not in SETTINGS:
            raise MixnasError(f"--only: unknown setting {s!r}; allowed: {', '.join(SETTINGS)}")
    counts = build(settings, args.out, given=given, address=args.address, limit=args.limit, only=only,
                   data_dir=args.data_dir, log=lambda line: print(line, flush=True))
    print(f"bench build {args.out}: {counts['ran']} job(s) ran this time ({counts['failed']} failed), "
          f"{counts['done']} were done before", file=sys.stderr)
    return 1 if counts["failed"] else 0


def cmd_card(args: argparse.Namespace) -> int:
    from mixnas.tabular import Table
    from mixnas.tabular_stats import write_card

    table = Table(args.table)
    table.space()  # the table's space.yaml is read (and checked) before the statistics are computed
    path = write_card(table, args.out)
    print(path.read_text())
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixnas.cli.dashboard import cmd_dashboard as dashboard
    from mixnas.simulate import table_run
    from mixnas.tabular import Table

    table = Table(args.table)
    out = args.out or f"runs/{table.dir.resolve().name}-all"
    if Path(out, "search.yaml").exists():
        raise MixnasError(f"{out}: a run is already there; choose another --out or delete it")
    search = table_run(table, out, objectives=args.objectives)
    print(f"{out}: {search.counts()['complete']} architectures of {table.dir} as one run; Pareto front of "
          f"{len(search.front())}", flush=True)
    return dashboard(argparse.Namespace(runs=[out], out=None, js="inline", bootstrap=400,
                                        screenshot=args.screenshot, serve=False, port=8050, optuna_dashboard=False))
