"""The ``mixnas search`` command (registered by :func:`register`).

``mixnas search --space SPACE.yaml [--trials N] [--sampler tpe|nsga2|random|grid|auto] [--scheduler moasha|asha|none]
[--max-epochs E] [--concurrency K] [--resources cpu=1,gpu=0.25] [--address auto|HOST:PORT] [--storage URL]
[--study-name NAME] [--join] [--out runs/NAME] [--resume] [--seed S]`` runs a multi-objective search through Ray Tune
(or replays it on a mixnas-bench table with ``--table``); ``--resume`` is checked by :mod:`mixnas.cli.resume`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mixnas.cli.resume import resume_args
from mixnas.errors import MixnasError

if TYPE_CHECKING:
    from mixnas.search import Search, SearchSettings
    from mixnas.space import Space
    from mixnas.tabular import Table

# Defaults sized for the quickstart: about 10 minutes on a 2-core CPU, Fashion-MNIST. 10 % of the training
# split (5,400 images) for 2 epochs separates the architectures (77-80 % top-1) where 5 % did not (the
# smallest model was within noise of the best, a front of 2-3 points); eta 2 completes half of the trials.
QUICKSTART = {"trials": 30, "max_epochs": 2, "fraction": 0.1, "val_fraction": 0.1, "concurrency": 2, "eta": 2.0,
              "grace": 1}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` command to the ``mixnas`` parser."""
    p = sub.add_parser("search", help="multi-objective architecture search (Optuna + Ray Tune, MO-ASHA)",
                       description="Search a space: Optuna proposes, cheap checks filter, Ray Tune proxy-trains, "
                                   "MO-ASHA stops the unpromising early. The study is the durable record.")
    p.add_argument("--space", help="search-space YAML (see search_spaces/); with --resume, the recorded one")
    p.add_argument("--dataset", help="dataset (default: the space's task)")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--trials", type=int,
                   help="architectures to train in the study, all states counted; re-used repeats and "
                        f"infeasible / invalid candidates are recorded but not counted (default {QUICKSTART['trials']})")
    p.add_argument("--objectives", help="e.g. top1:max,macs:min,latency_ms:min (default: the space's)")
    p.add_argument("--sampler", help="tpe | nsga2 | nsga3 | gp | random | grid | auto (default auto: "
                                                     "grouped multivariate TPE for conditional spaces, else NSGA-II)")
    p.add_argument("--scheduler", help="moasha | asha | none (default moasha)")
    p.add_argument("--max-epochs", type=int,
                   help=f"full fidelity in epochs (default {QUICKSTART['max_epochs']}; with --table, the table's)")
    p.add_argument("--grace", type=int, help=f"first rung in epochs (default {QUICKSTART['grace']}; with --table, the "
                                               "grace the table's rank correlations recommend)")
    p.add_argument("--eta", type=float,
                   help=f"MO-ASHA / ASHA reduction factor (default {QUICKSTART['eta']:g})")
    p.add_argument("--fraction", type=float,
                   help=f"share of the training split each trial trains on (default {QUICKSTART['fraction']}; "
                        "with --table, the table's)")
    p.add_argument("--val-fraction", type=float,
                   help=f"held-out validation share (default {QUICKSTART['val_fraction']}; with --table, the table's)")
    p.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast in training")
    p.add_argument("--concurrency", type=int, help="trials at once (default 2)")
    p.add_argument("--resources", help="per trial, e.g. cpu=1,gpu=0.25 (default cpu=1)")
    p.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///..., postgresql://..., or journal:PATH "
                                     "(default: sqlite file study.db in the run folder)")
    p.add_argument("--study-name", help="study name (default: the run folder's name)")
    p.add_argument("--join", action="store_true", default=None,
                   help="one of several drivers of one study, each with its own --out (and Ray): create the study "
                        "or join it; --trials counts this driver's trials; needs --storage every driver reaches and "
                        "--study-name (see docs/search.md)")
    p.add_argument("--out", help="run folder (default runs/SPACE-sSEED)")
    p.add_argument("--resume", action="store_true",
                   help="continue the search recorded in --out (after a crash, or with a larger --trials): its "
                        "settings come from OUT/search.yaml; only --trials and execution settings (--concurrency, "
                        "--resources, --address, --data-dir, --retries) may differ from the record")
    p.add_argument("--retries", type=int, help="retries of a trial whose worker dies (default 2)")
    p.add_argument("--seed", type=int, help="seed of the sampler and of every trial's training (default 0)")
    p.add_argument("--keep-checkpoints", action="store_true", default=None,
                   help="keep the trained weights of COMPLETE trials in OUT/checkpoints (for mixnas export)")
    p.add_argument("--table", help="a mixnas-bench table folder: replay the search on it instead of training "
                                   "(simulated clock, --concurrency workers; see `mixnas bench`)")
    p.add_argument("--common-fidelity-front", action="store_true", default=None,
                   help="also write pareto_common_fidelity.yaml: the front at the highest fidelity every trained "
                        "trial reached, pruned ones included (pareto.yaml stays COMPLETE-only)")
    p.add_argument("--dry-run", action="store_true",
                   help="run every check the search makes before launch (the space, its task, the settings; what "
                        "`mixnas space check` runs), then stop: nothing is written or trained")
    p.set_defaults(func=cmd_search)


# What a new search takes for a flag that is not given (a resumed one takes its record's value instead).
CLI_DEFAULTS = {"trials": QUICKSTART["trials"], "sampler": "auto", "scheduler": "moasha", "eta": QUICKSTART["eta"],
                "concurrency": QUICKSTART["concurrency"], "resources": "cpu=1,gpu=0", "retries": 2, "seed": 0,
                "bf16": False, "keep_checkpoints": False, "common_fidelity_front": False}
FIDELITY = ("max_epochs", "fraction", "val_fraction", "grace")


def cmd_search(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from mixnas.search import Search
    from mixnas.space import load_space

    given = {k for k in FIDELITY if getattr(args, k) is not None}
    out = _run_folder(args)
    for key, value in CLI_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    space = load_space(args.space)
    table, origin = _fill_fidelity(args, space, out, given)
    settings = _settings(args, out)
    if args.concurrency < 1:
        raise MixnasError("--concurrency must be at least 1")
    if args.dry_run:
        return _dry_run(args, settings, space)
    search = Search(settings, space=space, log=lambda line: print(line, flush=True), check_data=table is None)
    _announce(search, settings, args, out, origin, table)
    _run(search, table, out)
    print(search.summary(), flush=True)
    return 0


def _run_folder(args: argparse.Namespace) -> str:
    """The run folder; a resumed search's settings are filled in from its record there, a new search's space
    file must exist."""
    if args.resume:
        if not args.out and not args.space:
            raise MixnasError("--resume needs --out RUN (the run folder of the search to continue)")
        out = args.out or _default_out(args)
        resume_args(args, Path(out))
        return out
    if not args.space:
        raise MixnasError("--space is required (a search-space YAML; see search_spaces/), unless --resume "
                          "continues a recorded search")
    if not Path(args.space).is_file():
        raise MixnasError(f"{args.space}: no such search-space file")
    return args.out or _default_out(args)


def _default_out(args: argparse.Namespace) -> str:
    return f"runs/{Path(args.space).stem}-s{args.seed if args.seed is not None else 0}"


def _fill_fidelity(args: argparse.Namespace, space: Space, out: str,
                   given: set[str]) -> tuple[Table | None, dict[str, str]]:
    """Fill the fidelity flags not given: from the table replayed (``--table``), else the space's task.train,
    else the quickstart's defaults (a flag given comes first). Returns the table, if any, and where each
    fidelity setting came from, for the search's first line."""
    table, origin = None, {}
    space_train = {"max_epochs" if k == "epochs" else k: v for k, v in dict(space.task.train).items()
                   if k in ("epochs", "fraction", "val_fraction") and v is not None}
    if args.table:
        from mixnas.tabular import Table

        table = Table(args.table)
        recipe = table.build_train()
        defaults = {"max_epochs": table.epochs, "fraction": recipe["fraction"], "val_fraction": recipe["val_fraction"],
                    "grace": table.recommended()["grace"]}
        source = f"the table {args.table}"
    else:  # precedence: a flag given > the space's task.train > the quickstart's defaults
        defaults = {**QUICKSTART, **space_train}
        source = None
    for key in FIDELITY:
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
            origin[key] = source or (f"the space's task.train.{'epochs' if key == 'max_epochs' else key}"
                                     if key in space_train else "the default")
        else:
            origin[key] = f"--{key.replace('_', '-')}" if key in given else f"recorded in {out}/search.yaml"
    if table is not None and not args.storage:  # a replay writes hundreds of trials a second: a journal file
        args.storage = f"journal:{Path(out).resolve() / 'study.journal'}"
    return table, origin


def _settings(args: argparse.Namespace, out: str) -> SearchSettings:
    """The :class:`~mixnas.search.SearchSettings` of the filled-in flags."""
    from mixnas.search import SearchSettings, parse_resources

    train = {"fraction": args.fraction, "val_fraction": args.val_fraction}
    if args.bf16:
        train["bf16"] = True
    return SearchSettings(
        space=args.space, out=out, dataset=args.dataset, data_dir=args.data_dir, trials=args.trials,
        objectives=args.objectives, sampler=args.sampler, scheduler=args.scheduler, max_epochs=args.max_epochs,
        grace=args.grace, eta=args.eta, concurrency=args.concurrency, resources=parse_resources(args.resources),
        address=args.address, storage=args.storage, study_name=args.study_name, resume=args.resume,
        seed=args.seed, train=train, max_retries=args.retries, common_fidelity_front=args.common_fidelity_front,
        keep_checkpoints=args.keep_checkpoints, table=args.table, join=bool(args.join))


def _dry_run(args: argparse.Namespace, settings: SearchSettings, space: Space) -> int:
    """``--dry-run``: the checks a search makes before launch, and nothing else."""
    from mixnas.search import prelaunch

    plan, sampler = prelaunch(settings, space)
    print(f"search --dry-run: {args.space} passes the checks before launch: dataset {plan.dataset}, objectives "
          f"{', '.join(map(str, plan.objectives))}, sampler {sampler}, scheduler {settings.scheduler}, "
          f"{settings.trials} trials x up to {plan.train['epochs']} epochs; nothing was written or trained")
    return 0


def _announce(search: Search, settings: SearchSettings, args: argparse.Namespace, out: str, origin: dict[str, str],
              table: Table | None) -> None:
    """The search's first line: what it searches, how long each trial trains and where that came from."""
    where = f"replayed on the table {args.table} with {settings.concurrency} simulated workers" if table else "trained"
    resumed = f" (resumed: settings from {out}/search.yaml)" if args.resume else ""
    print(f"search {search.study_name}{resumed}: space {args.space}, dataset {search.dataset}, sampler "
          f"{search.sampler_name}, scheduler {settings.scheduler}, {settings.trials} trials x up to {search.max_epochs} "
          f"epochs ({origin['max_epochs']}) on {args.fraction:g} of the training split ({origin['fraction']}), {where}, "
          f"out {out}", flush=True)


def _run(search: Search, table: Table | None, out: str) -> None:
    """Train the search through Ray Tune, or replay it on the table; a full disk is one error line that says
    what was kept and how to continue."""
    try:
        if table is not None:
            from mixnas.simulate import SimulatedRunner, validate

            validate(search, table)
            runner = SimulatedRunner(search, table)
            runner.run()
            print(f"simulated time {runner.clock / 60:.1f} min on {runner.workers} workers "
                  f"({runner.clock * runner.workers / 3600:.2f} worker-hours of training replayed)", flush=True)
        else:
            from mixnas.ray_io import run_search

            run_search(search)
    except Exception as err:
        from mixnas.errors import DiskFullError, disk_full_cause

        cause = disk_full_cause(err)
        if cause is None:
            raise
        raise DiskFullError(f"{out}: the disk is full ({_first_line(cause)}); the study ({search.storage_url}) keeps "
                            "every trial that finished, and the run folder's files their last complete version. "
                            f"Free some space, then continue with: mixnas search --resume --out {out}") from None
    finally:
        search.release()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__

