"""The ``mixnas search`` command (registered by :func:`register`).

``mixnas search --space SPACE.yaml [--trials N] [--sampler tpe|nsga2|random|grid|auto] [--scheduler moasha|asha|none]
[--max-epochs E] [--concurrency K] [--resources cpu=1,gpu=0.25] [--address auto|HOST:PORT] [--storage URL]
[--study-name NAME] [--join] [--out runs/NAME] [--resume] [--seed S]`` runs a multi-objective search through Ray Tune
(or replays it on a mixnas-bench table with ``--table``); ``--resume`` is checked by :mod:`mixnas.cli.resume`.
The flags are the keywords of :func:`mixnas.api.search`, which does the work.
"""

from __future__ import annotations

import argparse
import inspect

from mixnas.api import QUICKSTART


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
    p.add_argument("--sampler-option", action="append", dest="sampler_options", metavar="KEY=VALUE",
                   help="a keyword argument of the Optuna sampler, repeatable, over mixnas's settings "
                        "(docs/search.md): --sampler-option population_size=16 --sampler-option n_startup_trials=8")
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


def cmd_search(args: argparse.Namespace) -> int:
    """Hand the flags to :func:`mixnas.api.search`, whose keywords they are named after."""
    from mixnas import api

    keywords = inspect.signature(api.search).parameters
    api.search(**{k: v for k, v in vars(args).items() if k in keywords})
    return 0
