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
                        "--study-name (see README, Cluster)")
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

    p = sub.add_parser("export", help="export an architecture of a search run to ONNX")
    p.add_argument("run", help="a search run folder")
    p.add_argument("--trial", type=int, required=True, help="trial number")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)


# A resumed search takes its settings from its record (OUT/search.yaml). A flag given with --resume that differs
# from the record is refused: it would change what a trial means, or how the recorded search proceeds, and mix
# two searches in one study and one Pareto front. Only these may change on resume:
EXECUTION = ("trials", "concurrency", "resources", "address", "data_dir", "retries", "keep_checkpoints",
             "common_fidelity_front")
MEANING = ("space", "dataset", "objectives", "sampler", "scheduler", "max_epochs", "grace", "eta", "fraction",
           "val_fraction", "bf16", "seed", "storage", "study_name", "table", "join")
CLI_DEFAULTS = {"trials": QUICKSTART["trials"], "sampler": "auto", "scheduler": "moasha", "eta": QUICKSTART["eta"],
                "concurrency": QUICKSTART["concurrency"], "resources": "cpu=1,gpu=0", "retries": 2, "seed": 0,
                "bf16": False, "keep_checkpoints": False, "common_fidelity_front": False}


def read_record(out: Path) -> dict:
    """The settings recorded by the search in ``out`` (``search.yaml``; its trial count and execution settings
    as last resumed, from ``search.resume.yaml``), checked enough to resume from."""
    from mixnas.yamlio import load_located

    meta = out / "search.yaml"
    if not meta.is_file():
        raise MixnasError(f"{out}: nothing to resume: no search.yaml (the record a search writes before launch); "
                          "start the search without --resume")
    doc = load_located(meta)
    if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict) or \
            not isinstance(doc.get("resolved"), dict):
        raise MixnasError(f"{meta}: not a search record (expected the mappings 'settings' and 'resolved'); "
                          "it was damaged: restore it, or start a new search in another --out")
    record = {**doc["settings"], "resolved": doc["resolved"], "space_doc": doc.get("space")}
    later = out / "search.resume.yaml"
    if later.is_file():
        resumed = load_located(later)
        if isinstance(resumed, dict) and isinstance(resumed.get("settings"), dict):
            record.update({k: resumed["settings"][k] for k in EXECUTION_KEYS if k in resumed["settings"]})
    return record


EXECUTION_KEYS = ("trials", "concurrency", "resources", "address", "data_dir", "max_retries", "keep_checkpoints",
                  "common_fidelity_front")


def recorded_value(record: dict, flag: str) -> object:
    """The recorded value of a command-line flag, in the flag's own terms."""
    res, train = record["resolved"], record.get("train") or {}
    return {"space": record.get("space"), "dataset": res.get("dataset"), "objectives": ",".join(res.get("objectives")
            or []), "sampler": record.get("sampler"), "scheduler": record.get("scheduler"),
            "max_epochs": res.get("max_epochs"), "grace": record.get("grace"), "eta": record.get("eta"),
            "fraction": train.get("fraction", (res.get("train") or {}).get("fraction")),
            "val_fraction": train.get("val_fraction", (res.get("train") or {}).get("val_fraction")),
            "bf16": bool(train.get("bf16", False)), "seed": record.get("seed"), "storage": res.get("storage"),
            "study_name": res.get("study_name"), "table": record.get("table"), "join": bool(record.get("join")),
            "trials": record.get("trials"),
            "concurrency": record.get("concurrency"), "address": record.get("address"),
            "data_dir": record.get("data_dir"), "retries": record.get("max_retries"),
            "keep_checkpoints": record.get("keep_checkpoints"),
            "common_fidelity_front": record.get("common_fidelity_front"),
            "resources": ",".join(f"{k}={v:g}" for k, v in (record.get("resources") or {}).items())}[flag]


def _same(flag: str, given: object, recorded: object, record: dict) -> bool:
    if flag in ("space", "table"):  # the same file, however its path is written
        return recorded is not None and Path(str(given)).resolve() == Path(str(recorded)).resolve()
    if flag == "sampler":  # "auto" was resolved: either name is the same search
        return given in (recorded, record["resolved"].get("sampler"))
    if flag == "objectives":
        from mixnas.space import parse_objectives

        objs = parse_objectives(str(given).split(","), lambda msg: MixnasError(f"--objectives: {msg}"))
        return ",".join(str(o) for o in objs) == recorded
    if flag == "storage":
        return _storage_key(str(given)) == _storage_key(str(recorded))
    if isinstance(recorded, float) or isinstance(given, float):
        return recorded is not None and abs(float(given) - float(recorded)) < 1e-12
    return given == recorded


def resume_args(args: argparse.Namespace, out: Path) -> Path:
    """Fill ``args`` from the record of the search in ``out``; refuse a flag whose meaning differs from it.
    Returns the record's space file, checked against the space the search recorded."""
    record = read_record(out)
    for flag in MEANING:
        given = getattr(args, flag, None)
        if given is None:
            continue
        recorded = recorded_value(record, flag)
        if not _same(flag, given, recorded, record):
            raise MixnasError(f"--resume: --{flag.replace('_', '-')} {given} differs from the search recorded in "
                              f"{out}/search.yaml ({flag}: {recorded}); a resumed search keeps what its trials "
                              f"mean. Drop the flag, or start a new search in another --out (only --trials and "
                              f"execution settings ({', '.join('--' + f.replace('_', '-') for f in EXECUTION)}) may "
                              "change)")
    for flag in (*MEANING, *EXECUTION):
        if getattr(args, flag, None) is None:  # as the record's settings say (None where the space decided)
            plain = flag in ("dataset", "objectives", "storage", "study_name")
            setattr(args, flag, record.get(flag) if plain else recorded_value(record, flag))
    space = Path(str(args.space))
    if not space.is_file():
        raise MixnasError(f"{space}: the search space recorded in {out}/search.yaml is gone; restore it, or pass "
                          "--space with the same file (its content must match the record)")
    _check_space_unchanged(space, record.get("space_doc"), out)
    return space


def _storage_key(url: str) -> str:
    """A storage URL with its file, if any, made absolute (``sqlite:///run/study.db`` is the same file as
    ``sqlite:////home/me/run/study.db`` when run from /home/me)."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def _check_space_unchanged(space: Path, recorded: object, out: Path) -> None:
    """A space file edited since the search began would change what later trials mean: refused, with the
    first YAML path that differs."""
    if not isinstance(recorded, dict) or not recorded:
        return  # an older record without the space's text: nothing to compare with
    from mixnas.space import load_space
    from mixnas.util import plain as _plain

    now = _plain(load_space(str(space)).raw)
    path = _first_difference(now, recorded)
    if path is not None:
        raise MixnasError(f"--resume: {space} differs from the space recorded in {out}/search.yaml at "
                          f"{path or 'its top level'}; a resumed search keeps what its trials mean: restore the "
                          "file, or start a new search in another --out")


def _first_difference(a: object, b: object, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".")
            sub = _first_difference(a[key], b[key], f"{path}.{key}")
            if sub is not None:
                return sub.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path.lstrip(".")
        for i, (x, y) in enumerate(zip(a, b)):
            sub = _first_difference(x, y, f"{path}[{i}]")
            if sub is not None:
                return sub.lstrip(".")
        return None
    return None if a == b else path.lstrip(".")


def cmd_search(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from mixnas.search import Search, SearchSettings, parse_resources

    given = {k for k in ("max_epochs", "fraction", "val_fraction", "grace") if getattr(args, k) is not None}
    if args.resume:
        if not args.out and not args.space:
            raise MixnasError("--resume needs --out RUN (the run folder of the search to continue)")
        out = args.out or f"runs/{Path(args.space).stem}-s{args.seed if args.seed is not None else 0}"
        resume_args(args, Path(out))
    else:
        if not args.space:
            raise MixnasError("--space is required (a search-space YAML; see search_spaces/), unless --resume "
                              "continues a recorded search")
        if not Path(args.space).is_file():
            raise MixnasError(f"{args.space}: no such search-space file")
        out = args.out or f"runs/{Path(args.space).stem}-s{args.seed if args.seed is not None else 0}"
    for key, value in CLI_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from mixnas.space import load_space

    space = load_space(args.space)
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
    for key in ("max_epochs", "fraction", "val_fraction", "grace"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
            origin[key] = source or (f"the space's task.train.{'epochs' if key == 'max_epochs' else key}"
                                     if key in space_train else "the default")
        else:
            origin[key] = f"--{key.replace('_', '-')}" if key in given else f"recorded in {out}/search.yaml"
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
    if args.dry_run:
        from mixnas.search import prelaunch

        plan, sampler = prelaunch(settings, space)
        print(f"search --dry-run: {args.space} passes the checks before launch: dataset {plan.dataset}, objectives "
              f"{', '.join(map(str, plan.objectives))}, sampler {sampler}, scheduler {settings.scheduler}, "
              f"{settings.trials} trials x up to {plan.train['epochs']} epochs; nothing was written or trained")
        return 0
    search = Search(settings, space=space, log=lambda line: print(line, flush=True), check_data=table is None)
    where = f"replayed on the table {args.table} with {settings.concurrency} simulated workers" if table else "trained"
    resumed = f" (resumed: settings from {out}/search.yaml)" if args.resume else ""
    print(f"search {search.study_name}{resumed}: space {args.space}, dataset {search.dataset}, sampler "
          f"{search.sampler_name}, scheduler {settings.scheduler}, {settings.trials} trials x up to {search.max_epochs} "
          f"epochs ({origin['max_epochs']}) on {args.fraction:g} of the training split ({origin['fraction']}), {where}, "
          f"out {out}", flush=True)
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
    print(search.summary(), flush=True)
    return 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


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
    from mixnas.analysis import checked_attrs, open_run_study, read_run_record

    _, where, trials = open_run_study(run, read_run_record(run))  # untrusted files: one error line each
    for t in trials:
        if t.number == number:
            attrs = checked_attrs(t, where)
            if attrs.get("arch") is None:
                raise MixnasError(f"{where}: trial {number} has no architecture (an invalid candidate)")
            return {**attrs, "state": t.state.name}
    raise MixnasError(f"{run}: no trial {number}")
