"""The ``mixnas search`` and ``mixnas export`` commands (registered by :func:`register`).

``mixnas search --space SPACE.yaml [--trials N] [--sampler tpe|nsga2|random|grid|auto] [--scheduler moasha|asha|none]
[--max-epochs E] [--concurrency K] [--resources cpu=1,gpu=0.25] [--address auto|HOST:PORT] [--storage URL]
[--study-name NAME] [--join] [--out runs/NAME] [--resume] [--seed S]`` runs a multi-objective search through Ray Tune;
``mixnas export RUN --trial N --onnx out.onnx`` exports one of its architectures.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mixnas.errors import MixnasError

# Defaults sized for the quickstart: about 10 minutes on a 2-core CPU, Fashion-MNIST. 10 % of the training
# split (5,400 images) for 2 epochs separates the architectures (77-80 % top-1) where 5 % did not (the
# smallest model was within noise of the best, a front of 2-3 points); eta 2 completes half of the trials.
QUICKSTART = {"trials": 30, "max_epochs": 2, "fraction": 0.1, "val_fraction": 0.1, "concurrency": 2, "eta": 2.0,
              "grace": 1}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="multi-objective architecture search (Optuna + Ray Tune, MO-ASHA)",
                       description="Search a space: Optuna proposes, cheap checks filter, Ray Tune proxy-trains, "
                                   "MO-ASHA stops the unpromising early. The study is the durable record.")
    p.add_argument("--space", required=True, help="search-space YAML (see search_spaces/)")
    p.add_argument("--dataset", help="dataset (default: the space's task)")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--trials", type=int, default=QUICKSTART["trials"],
                   help="architectures to train in the study, all states counted; re-used repeats and "
                        f"infeasible / invalid candidates are recorded but not counted (default {QUICKSTART['trials']})")
    p.add_argument("--objectives", help="e.g. top1:max,macs:min,latency_ms:min (default: the space's)")
    p.add_argument("--sampler", default="auto", help="tpe | nsga2 | nsga3 | gp | random | grid | auto (default auto: "
                                                     "grouped multivariate TPE for conditional spaces, else NSGA-II)")
    p.add_argument("--scheduler", default="moasha", help="moasha | asha | none (default moasha)")
    p.add_argument("--max-epochs", type=int,
                   help=f"full fidelity in epochs (default {QUICKSTART['max_epochs']}; with --table, the table's)")
    p.add_argument("--grace", type=int, help=f"first rung in epochs (default {QUICKSTART['grace']}; with --table, the "
                                               "grace the table's rank correlations recommend)")
    p.add_argument("--eta", type=float, default=QUICKSTART["eta"],
                   help=f"MO-ASHA / ASHA reduction factor (default {QUICKSTART['eta']:g})")
    p.add_argument("--fraction", type=float,
                   help=f"share of the training split each trial trains on (default {QUICKSTART['fraction']}; "
                        "with --table, the table's)")
    p.add_argument("--val-fraction", type=float,
                   help=f"held-out validation share (default {QUICKSTART['val_fraction']}; with --table, the table's)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in training")
    p.add_argument("--concurrency", type=int, default=QUICKSTART["concurrency"], help="trials at once (default 2)")
    p.add_argument("--resources", default="cpu=1,gpu=0", help="per trial, e.g. cpu=1,gpu=0.25 (default cpu=1)")
    p.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///..., postgresql://..., or journal:PATH "
                                     "(default: sqlite file study.db in the run folder)")
    p.add_argument("--study-name", help="study name (default: the run folder's name)")
    p.add_argument("--join", action="store_true", default=None,
                   help="one of several drivers of one study, each with its own --out (and Ray): create the study "
                        "or join it; --trials counts this driver's trials; needs --storage every driver reaches and "
                        "--study-name (see README, Cluster)")
    p.add_argument("--out", help="run folder (default runs/SPACE-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the study of --out (after a crash, or with a "
                                                          "larger --trials)")
    p.add_argument("--retries", type=int, default=2, help="retries of a trial whose worker dies (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial's training")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep the trained weights of COMPLETE trials in OUT/checkpoints (for mixnas export)")
    p.add_argument("--table", help="a mixnas-bench table folder: replay the search on it instead of training "
                                   "(simulated clock, --concurrency workers; see `mixnas bench`)")
    p.add_argument("--common-fidelity-front", action="store_true",
                   help="also write pareto_common_fidelity.yaml: the front at the highest fidelity every trained "
                        "trial reached, pruned ones included (pareto.yaml stays COMPLETE-only)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="export an architecture of a search run to ONNX")
    p.add_argument("run", help="a search run folder")
    p.add_argument("--trial", type=int, required=True, help="trial number")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)


def cmd_search(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from mixnas.search import Search, SearchSettings, parse_resources

    if not Path(args.space).is_file():
        raise MixnasError(f"{args.space}: no such search-space file")
    out = args.out or f"runs/{Path(args.space).stem}-s{args.seed}"
    table = None
    if args.table:
        from mixnas.tabular import Table

        table = Table(args.table)
        recipe = table.build_train()
        defaults = {"max_epochs": table.epochs, "fraction": recipe["fraction"], "val_fraction": recipe["val_fraction"],
                    "grace": table.recommended()["grace"]}
    else:
        defaults = QUICKSTART
    for key in ("max_epochs", "fraction", "val_fraction", "grace"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if table is not None and not args.storage:  # a replay writes hundreds of trials a second: a journal file
        args.storage = f"journal:{Path(out).resolve() / 'study.journal'}"
    train = {"fraction": args.fraction, "val_fraction": args.val_fraction}
    if args.bf16:
        train["bf16"] = True
    settings = SearchSettings(
        space=args.space, out=out, dataset=args.dataset, data_dir=args.data_dir, trials=args.trials,
        objectives=args.objectives, sampler=args.sampler, scheduler=args.scheduler, max_epochs=args.max_epochs,
        grace=args.grace, eta=args.eta, concurrency=args.concurrency, resources=parse_resources(args.resources),
        address=args.address, storage=args.storage, study_name=args.study_name, resume=args.resume,
        seed=args.seed, train=train, max_retries=args.retries, common_fidelity_front=args.common_fidelity_front,
        keep_checkpoints=args.keep_checkpoints, table=args.table, join=bool(args.join))
    if args.concurrency < 1:
        raise MixnasError("--concurrency must be at least 1")
    search = Search(settings, log=lambda line: print(line, flush=True), check_data=table is None)
    where = f"replayed on the table {args.table} with {settings.concurrency} simulated workers" if table else "trained"
    print(f"search {search.study_name}: space {args.space}, dataset {search.dataset}, sampler {search.sampler_name}, "
          f"scheduler {settings.scheduler}, {settings.trials} trials x up to {search.max_epochs} epochs, {where}, "
          f"out {out}", flush=True)
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
    print(search.summary(), flush=True)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from mixnas.config import ArchConfig
    from mixnas.network import build_model

    run = Path(args.run)
    rows = _trial_attrs(run, args.trial)
    arch = ArchConfig.from_dict(rows["arch"])
    model = build_model(arch, seed=int(rows.get("seed", 0)))
    ckpt = run / "checkpoints" / f"trial_{args.trial:05d}.pt"
    if ckpt.is_file():
        from mixnas.train import load_checkpoint

        model = load_checkpoint(ckpt).model
    model.eval()
    x = torch.zeros(1, arch.input.in_channels, arch.input.image_size, arch.input.image_size)
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError:
        raise MixnasError("ONNX export needs the onnx package: pip install 'mixnas[export]'") from None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (x,), args.onnx, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    except Exception as err:  # noqa: BLE001 - reported on one line
        raise MixnasError(f"ONNX export of trial {args.trial} failed: {type(err).__name__}: {err}") from None
    print(f"wrote {args.onnx} (trial {args.trial}, digest {arch.digest()}"
          f"{', with its checkpoint' if ckpt.is_file() else ', initial weights: no checkpoint was kept'})")
    return 0


def _trial_attrs(run: Path, number: int) -> dict:
    import yaml

    from mixnas import optuna_io

    meta = run / "search.yaml"
    if not meta.is_file():
        raise MixnasError(f"{run}: not a search run folder (no search.yaml)")
    resolved = yaml.safe_load(meta.read_text())["resolved"]
    storage = optuna_io.storage_for(resolved["storage"])
    study = optuna_io.load_existing(storage, resolved["study_name"])
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            if "arch" not in t.user_attrs:
                raise MixnasError(f"{run}: trial {number} has no architecture (invalid candidate)")
            return {**t.user_attrs, "state": t.state.name}
    raise MixnasError(f"{run}: no trial {number}")
