"""The Python API: what the ``mixnas`` commands do, as documented functions (see docs/python.md).

``mixnas search``, ``mixnas study run`` / ``study report`` and ``mixnas dashboard`` parse their arguments and
call these functions, so a script and the command line run the same code with the same defaults, checks and
console lines. A keyword has the name of its command-line flag (``max_epochs`` for ``--max-epochs``), and a
mistake is a :class:`~mixnas.errors.MixnasError` whose message names that flag, as the command's error line
does.

* :func:`search` runs a search (or resumes one) and returns its :class:`Run`; :func:`load_run` reads a run
  folder. A :class:`Run` gives its trials as a pandas DataFrame (:meth:`Run.trials`), its Pareto front
  (:meth:`Run.front`, :meth:`Run.front_archs`), any trial's architecture (:meth:`Run.arch`), its HTML report
  (:meth:`Run.dashboard`) and the Optuna study itself (:attr:`Run.study`).
* :func:`load_space` (:func:`mixnas.space.load_space`): its ``sample(trial)`` puts a mixnas space inside one's
  own Optuna objective.
* :func:`run_study` runs a reproduction study (a :class:`StudyRun`), :func:`load_study_run` reads one;
  :func:`study_report` writes its tables.
* :func:`write_dashboard`: one HTML report of one or several runs.

The package root re-exports these names lazily (``mixnas.search(...)``, ``mixnas.load_run(...)``), and this
module imports Optuna, Ray, pandas and plotly only inside the functions that use them: ``import mixnas`` and
``mixnas --help`` stay as cheap as before.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixnas.errors import MixnasError
from mixnas.space import InvalidCandidate, Space, load_space
from mixnas.vocab import OutcomeStatus

if TYPE_CHECKING:
    import optuna
    import pandas

    from mixnas import analysis
    from mixnas.config import ArchConfig
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.study import Study
    from mixnas.tabular import Table

# -- search ----------------------------------------------------------------------------------------------------

# Defaults sized for the quickstart: about 10 minutes on a 2-core CPU, Fashion-MNIST. 10 % of the training
# split (5,400 images) for 2 epochs separates the architectures (77-80 % top-1) where 5 % did not (the
# smallest model was within noise of the best, a front of 2-3 points); eta 2 completes half of the trials.
QUICKSTART = {"trials": 30, "max_epochs": 2, "fraction": 0.1, "val_fraction": 0.1, "concurrency": 2, "eta": 2.0,
              "grace": 1}
# What a new search takes for a keyword that is not given (a resumed one takes its record's value instead).
SEARCH_DEFAULTS = {"trials": QUICKSTART["trials"], "sampler": "auto", "scheduler": "moasha", "eta": QUICKSTART["eta"],
                   "concurrency": QUICKSTART["concurrency"], "resources": "cpu=1,gpu=0", "retries": 2, "seed": 0,
                   "bf16": False, "keep_checkpoints": False, "common_fidelity_front": False}
FIDELITY = ("max_epochs", "fraction", "val_fraction", "grace")


def search(space: str | Path | Space | None = None, *, out: str | Path | None = None, trials: int | None = None,
           objectives: str | Sequence[str] | None = None, sampler: str | None = None,
           sampler_options: Mapping[str, Any] | Sequence[str] | None = None, scheduler: str | None = None,
           max_epochs: int | None = None, grace: int | None = None,
           eta: float | None = None, fraction: float | None = None, val_fraction: float | None = None,
           bf16: bool | None = None, dataset: str | None = None, data_dir: str | None = None,
           concurrency: int | None = None, resources: str | Mapping[str, float] | None = None,
           address: str | None = None, storage: str | None = None, study_name: str | None = None,
           join: bool | None = None, resume: bool = False, retries: int | None = None, seed: int | None = None,
           keep_checkpoints: bool | None = None, table: str | Path | None = None,
           common_fidelity_front: bool | None = None, plugins: Sequence[str] = (), dry_run: bool = False,
           quiet: bool = False) -> Run | None:
    """Search ``space`` (a space file or a loaded :class:`~mixnas.space.Space`) as ``mixnas search`` does, and
    return the :class:`Run` (``None`` with ``dry_run``). docs/search.md describes every option.

    Every keyword is the flag of the same name; ``None`` means not given: a new search takes the command's
    default (``trials`` 30, ``sampler`` ``"auto"``, ``scheduler`` ``"moasha"``, ``eta`` 2, ``concurrency`` 2,
    ``resources`` ``"cpu=1,gpu=0"``, ``retries`` 2, ``seed`` 0; ``max_epochs``, ``fraction``, ``val_fraction``
    and ``grace`` from ``table``, else the space's ``task.train``, else 2 epochs on 10 % of the data, grace 1),
    and a resumed one (``resume=True``, ``out`` the run folder) the value its record holds. ``out`` defaults to
    ``runs/SPACE-sSEED``. ``objectives``: ``"top1:max,macs:min"`` or a list of such; ``resources``:
    ``"cpu=1,gpu=0.25"`` or ``{"cpu": 1, "gpu": 0.25}``; ``sampler_options``: keyword arguments of the Optuna
    sampler over mixnas's settings (``{"population_size": 16}``, or ``["population_size=16"]`` as the flag
    ``--sampler-option`` gives them); ``address``: a Ray cluster (default: a local Ray);
    ``table``: replay the search on a mixnas-bench table instead of training. ``plugins``: files or modules
    that register mixers, models or datasets, loaded first. ``dry_run``: the checks before launch only,
    nothing written. The console lines of the command (the first line, each trial, the progress, the summary)
    are printed unless ``quiet``; ``OUT/search.log`` records them either way."""
    opts = argparse.Namespace(**locals())  # the keywords, as the command's parsed flags
    return _search(opts)


def _search(opts: argparse.Namespace) -> Run | None:
    from mixnas.plugins import load_plugins
    from mixnas.search_driver import Search

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    load_plugins(opts.plugins, where="plugins")
    given_space = opts.space if isinstance(opts.space, Space) else None
    _normalise(opts)
    given = {k for k in FIDELITY if getattr(opts, k) is not None}
    out = _run_folder(opts)
    for key, value in SEARCH_DEFAULTS.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    space = given_space if given_space is not None and not opts.resume else load_space(opts.space)
    table, origin = _fill_fidelity(opts, space, out, given)
    settings = _settings(opts, out)
    if opts.concurrency < 1:
        raise MixnasError("--concurrency must be at least 1")
    say = (lambda line: None) if opts.quiet else (lambda line: print(line, flush=True))
    if opts.dry_run:
        say(_dry_run_line(opts, settings, space))
        return None
    driver = Search(settings, space=space, log=None if opts.quiet else say, check_data=table is None)
    say(_first_line(driver, settings, opts, out, origin, table))
    _run(driver, table, out, say)
    say(driver.summary())
    return Run(out)


def _normalise(opts: argparse.Namespace) -> None:
    """The keywords' Python forms (a Space, a list of objectives, a mapping of resources, paths) in the
    command's terms."""
    if isinstance(opts.space, Space):
        opts.space = opts.space.path
    for key in ("space", "out", "table"):
        if isinstance(getattr(opts, key), Path):
            setattr(opts, key, str(getattr(opts, key)))
    if opts.objectives is not None and not isinstance(opts.objectives, str):
        opts.objectives = ",".join(map(str, opts.objectives))
    if isinstance(opts.resources, Mapping):
        opts.resources = ",".join(f"{k}={v}" for k, v in opts.resources.items())
    if opts.sampler_options is not None:
        opts.sampler_options = parse_sampler_options(opts.sampler_options)


def parse_sampler_options(given: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """``["population_size=16", "constant_liar=false"]`` (values read as YAML scalars) or a mapping -> a dict
    of keyword arguments; a malformed item is a MixnasError naming it. Whether the sampler takes them is
    checked when it is made (:func:`mixnas.optuna_io.make_sampler`)."""
    import yaml

    if isinstance(given, Mapping):
        items = list(given.items())
    else:
        items = []
        for item in given:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip().isidentifier():
                raise MixnasError(f"--sampler-option {item!r}: expected KEY=VALUE with KEY a keyword argument of "
                                  "the sampler, e.g. population_size=16")
            try:
                parsed = yaml.safe_load(value) if value.strip() else None
            except yaml.YAMLError:
                parsed = value
            items.append((key.strip(), parsed))
    out = {}
    for key, value in items:
        if not isinstance(key, str) or not key.isidentifier():
            raise MixnasError(f"sampler options: {key!r} is not a keyword argument name")
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise MixnasError(f"sampler option {key}: expected a number, a bool or a string, found "
                              f"{type(value).__name__}")
        if key == "seed":
            raise MixnasError("sampler option seed: the sampler's seed is --seed's (joined drivers derive theirs)")
        out[key] = value
    return out


def _run_folder(opts: argparse.Namespace) -> str:
    """The run folder; a resumed search's settings are filled in from its record there, a new search's space
    file must exist."""
    from mixnas.cli.resume import resume_args

    if opts.resume:
        if not opts.out and not opts.space:
            raise MixnasError("--resume needs --out RUN (the run folder of the search to continue)")
        out = opts.out or _default_out(opts)
        resume_args(opts, Path(out))
        return out
    if not opts.space:
        raise MixnasError("--space is required (a search-space YAML; see search_spaces/), unless --resume "
                          "continues a recorded search")
    if not Path(opts.space).is_file():
        raise MixnasError(f"{opts.space}: no such search-space file")
    return opts.out or _default_out(opts)


def _default_out(opts: argparse.Namespace) -> str:
    return f"runs/{Path(opts.space).stem}-s{opts.seed if opts.seed is not None else 0}"


def _fill_fidelity(opts: argparse.Namespace, space: Space, out: str,
                   given: set[str]) -> tuple[Table | None, dict[str, str]]:
    """Fill the fidelity settings not given: from the table replayed (``table``), else the space's
    task.train, else the quickstart's defaults (a setting given comes first). Returns the table, if any, and
    where each fidelity setting came from, for the search's first line."""
    table, origin = None, {}
    space_train = {"max_epochs" if k == "epochs" else k: v for k, v in dict(space.task.train).items()
                   if k in ("epochs", "fraction", "val_fraction") and v is not None}
    if opts.table:
        from mixnas.tabular import Table

        table = Table(opts.table)
        recipe = table.build_train()
        defaults = {"max_epochs": table.epochs, "fraction": recipe["fraction"], "val_fraction": recipe["val_fraction"],
                    "grace": table.recommended()["grace"]}
        source = f"the table {opts.table}"
    else:  # precedence: a setting given > the space's task.train > the quickstart's defaults
        defaults = {**QUICKSTART, **space_train}
        source = None
    for key in FIDELITY:
        if getattr(opts, key) is None:
            setattr(opts, key, defaults[key])
            origin[key] = source or (f"the space's task.train.{'epochs' if key == 'max_epochs' else key}"
                                     if key in space_train else "the default")
        else:
            origin[key] = f"--{key.replace('_', '-')}" if key in given else f"recorded in {out}/search.yaml"
    if table is not None and not opts.storage:  # a replay writes hundreds of trials a second: a journal file
        opts.storage = f"journal:{Path(out).resolve() / 'study.journal'}"
    return table, origin


def _settings(opts: argparse.Namespace, out: str) -> SearchSettings:
    """The :class:`~mixnas.search_driver.SearchSettings` of the filled-in options."""
    from mixnas.search_driver import SearchSettings, parse_resources

    train = {"fraction": opts.fraction, "val_fraction": opts.val_fraction}
    if opts.bf16:
        train["bf16"] = True
    return SearchSettings(
        space=opts.space, out=out, dataset=opts.dataset, data_dir=opts.data_dir, trials=opts.trials,
        objectives=opts.objectives, sampler=opts.sampler, sampler_options=dict(opts.sampler_options or {}),
        scheduler=opts.scheduler, max_epochs=opts.max_epochs,
        grace=opts.grace, eta=opts.eta, concurrency=opts.concurrency, resources=parse_resources(opts.resources),
        address=opts.address, storage=opts.storage, study_name=opts.study_name, resume=opts.resume,
        seed=opts.seed, train=train, max_retries=opts.retries, common_fidelity_front=opts.common_fidelity_front,
        keep_checkpoints=opts.keep_checkpoints, table=opts.table, join=bool(opts.join))


def _dry_run_line(opts: argparse.Namespace, settings: SearchSettings, space: Space) -> str:
    """``dry_run``: the checks a search makes before launch, and nothing else."""
    from mixnas.search_driver import prelaunch

    plan, sampler = prelaunch(settings, space)
    if settings.sampler_options and sampler != "grid":  # options the sampler does not take: refused now
        from mixnas.optuna_io import make_sampler
        from mixnas.search_driver import is_conditional

        make_sampler(sampler, 0, conditional=is_conditional(space), options=settings.sampler_options)
    return (f"search --dry-run: {opts.space} passes the checks before launch: dataset {plan.dataset}, objectives "
            f"{', '.join(map(str, plan.objectives))}, sampler {_sampler_text(sampler, settings)}, "
            f"scheduler {settings.scheduler}, "
            f"{settings.trials} trials x up to {plan.train['epochs']} epochs; nothing was written or trained")


def _sampler_text(name: str, settings: SearchSettings) -> str:
    """``tpe`` or, with options, ``tpe (n_startup_trials=8)``."""
    options = ", ".join(f"{k}={v}" for k, v in sorted(settings.sampler_options.items()))
    return f"{name} ({options})" if options else name


def _first_line(driver: Search, settings: SearchSettings, opts: argparse.Namespace, out: str,
                origin: dict[str, str], table: Table | None) -> str:
    """The search's first line: what it searches, how long each trial trains and where that came from."""
    where = f"replayed on the table {opts.table} with {settings.concurrency} simulated workers" if table else "trained"
    resumed = f" (resumed: settings from {out}/search.yaml)" if opts.resume else ""
    return (f"search {driver.study_name}{resumed}: space {opts.space}, dataset {driver.dataset}, sampler "
            f"{_sampler_text(driver.sampler_name, settings)}, scheduler {settings.scheduler}, "
            f"{settings.trials} trials x up to "
            f"{driver.max_epochs} epochs ({origin['max_epochs']}) on {opts.fraction:g} of the training split "
            f"({origin['fraction']}), {where}, out {out}")


def _run(driver: Search, table: Table | None, out: str, say: Any) -> None:
    """Train the search through Ray Tune, or replay it on the table; a full disk is one error line that says
    what was kept and how to continue."""
    try:
        if table is not None:
            from mixnas.simulate import SimulatedRunner, validate

            validate(driver, table)
            runner = SimulatedRunner(driver, table)
            runner.run()
            say(f"simulated time {runner.clock / 60:.1f} min on {runner.workers} workers "
                f"({runner.clock * runner.workers / 3600:.2f} worker-hours of training replayed)")
        else:
            from mixnas.ray_io import run_search

            run_search(driver)
    except Exception as err:
        from mixnas.errors import DiskFullError, disk_full_cause

        cause = disk_full_cause(err)
        if cause is None:
            raise
        raise DiskFullError(f"{out}: the disk is full ({_error_line(cause)}); the study ({driver.storage_url}) keeps "
                            "every trial that finished, and the run folder's files their last complete version. "
                            f"Free some space, then continue with: mixnas search --resume --out {out}") from None
    finally:
        driver.release()


def _error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


# -- a run folder ----------------------------------------------------------------------------------------------

# The unit of each metric column of Run.trials() (DataFrame.attrs["units"]).
UNITS = {"top1": "% (validation top-1 at the last epoch trained)", "macs": "multiply-accumulates per image",
         "params": "parameters", "latency_ms": "ms per batch", "wall_time_s": "s"}


class Run:
    """A search run folder, read through its study (the durable record): made by :func:`search` and
    :func:`load_run`. It reads the study when first asked and keeps what it read; :meth:`refresh` reads it
    again (a search still running adds trials)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data: analysis.Run | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def refresh(self) -> Run:
        """Read the run folder and its study again; a damaged or missing one is a MixnasError."""
        from mixnas import analysis

        self._data = analysis.load_run(self.path)
        return self

    @property
    def data(self) -> analysis.Run:
        """The run as the dashboard reads it: :class:`mixnas.analysis.Run`, one plain record per trial."""
        if self._data is None:
            self.refresh()
        return self._data

    @property
    def name(self) -> str:
        return self.data.study_name

    @property
    def objectives(self) -> list[str]:
        """``["top1:max", "macs:min"]``: the metrics the search optimised, in the study's order."""
        return [f"{m}:{d}" for m, d in self.data.objectives]

    @property
    def storage_url(self) -> str:
        return self.data.storage_url

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (for Optuna's own tools: visualisation, importance evaluators, ...). Read it, do
        not tell it trials: the run folder's files are derived from it."""
        from mixnas import optuna_io

        return optuna_io.load_existing(optuna_io.storage_for(self.storage_url), self.data.study_name)

    def trials(self) -> pandas.DataFrame:
        """One row per trial, in trial-number order: ``number``, Optuna's ``state``, the ``category`` the
        dashboard and the console count it in (``pareto``, ``dominated``, ``pruned``, ``infeasible``,
        ``invalid``, ``failed``, ``duplicate``, ...), its ``status``; the metrics ``top1``, ``macs``,
        ``params``, ``latency_ms`` (units in ``DataFrame.attrs["units"]``; NaN where not measured);
        ``fidelity`` (epochs trained), ``wall_time_s``, ``digest``, ``seed``, ``duplicate_of``, ``driver``,
        ``reason``, the code that ran it (``mixnas_version``, ``git_commit``, ``git_dirty``), start and end
        times, ``arch`` (the ArchConfig as a dict; None for an invalid candidate) and one ``p:NAME`` column per
        space parameter (named by its YAML path), as in ``trials.csv``."""
        import pandas as pd

        frozen = {t.number: t for t in self.data.trials}
        rows = [self._row(rec, frozen[rec["number"]]) for rec in self.data.records]
        columns = list(self._row_keys())
        for row in rows:  # a conditional parameter exists in some trials only
            columns += [k for k in row if k not in columns]
        frame = pd.DataFrame(rows, columns=columns)
        frame = frame.astype({m: "float64" for m in UNITS} | {k: "Int64" for k in ("fidelity", "seed", "duplicate_of")})
        frame.attrs["units"] = dict(UNITS)
        frame.attrs["objectives"] = self.objectives
        return frame

    @staticmethod
    def _row_keys() -> tuple[str, ...]:
        from mixnas.vocab import SEARCH_METRICS

        return ("number", "state", "category", "status", *SEARCH_METRICS, "fidelity", "wall_time_s", "digest", "seed",
                "duplicate_of", "driver", "reason", "mixnas_version", "git_commit", "git_dirty", "datetime_start",
                "datetime_complete", "arch")

    def _row(self, rec: dict[str, Any], t: Any) -> dict[str, Any]:
        from mixnas.runs import trial_fields

        fields = trial_fields(t)
        code = t.user_attrs.get("code") if isinstance(t.user_attrs.get("code"), dict) else {}
        values = {**fields, **rec, "category": str(rec["category"]), "status": str(rec["status"] or ""),
                  "mixnas_version": code.get("mixnas"), "git_commit": code.get("git_commit"),
                  "git_dirty": code.get("git_dirty"), "datetime_start": t.datetime_start,
                  "datetime_complete": t.datetime_complete}
        row = {k: values.get(k) for k in self._row_keys()}
        row.update({f"p:{k}": v for k, v in t.params.items()})
        return row

    def front(self) -> pandas.DataFrame:
        """The rows of :meth:`trials` on the Pareto front: COMPLETE trials (full fidelity), one per
        architecture, not dominated over the run's objectives (the trials of ``pareto.yaml``)."""
        frame = self.trials()
        front = frame[frame["category"] == "pareto"].reset_index(drop=True)
        front.attrs = dict(frame.attrs)
        return front

    def arch(self, number: int) -> ArchConfig:
        """The ArchConfig trial ``number`` trained (named ``STUDY-tNUMBER``, as ``pareto/`` names it)."""
        from mixnas.config import ArchConfig

        recs = {r["number"]: r for r in self.data.records}
        if number not in recs:
            raise MixnasError(f"{self.path}: no trial {number} (the study has {len(recs)} trials, numbered from 0)")
        if not isinstance(recs[number].get("arch"), dict):
            raise MixnasError(f"{self.path}: trial {number} has no architecture: it was an invalid candidate "
                              f"({recs[number].get('reason') or recs[number]['summary']})")
        return ArchConfig.from_dict(recs[number]["arch"]).with_name(f"{self.data.study_name}-t{number}")

    def front_archs(self) -> list[ArchConfig]:
        """The ArchConfigs of the Pareto front, in trial-number order."""
        return [self.arch(int(n)) for n in self.front()["number"]]

    def dashboard(self, path: str | Path | None = None, *, js: str = "inline", bootstrap: int = 400) -> Path:
        """Write the HTML report ``mixnas dashboard`` writes (default ``RUN/report.html``); returns its path."""
        return write_dashboard([self], path, js=js, bootstrap=bootstrap).path


def load_run(path: str | Path) -> Run:
    """Read a search run folder (its ``search.yaml`` and its study, wherever ``--storage`` put it); a folder
    that is not one, or a damaged record, is a :class:`~mixnas.errors.MixnasError` naming the file."""
    return Run(path).refresh()


# -- dashboards ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    """A written report: its HTML file, its size, its figures, and the folder of its files (trial YAMLs, and
    plotly.js with ``js="file"``) with their size."""

    path: Path
    bytes: int
    figures: int
    files: Path
    files_bytes: int


def write_dashboard(runs: Sequence[str | Path | Run], out: str | Path | None = None, *, js: str = "inline",
                    bootstrap: int = 400) -> Dashboard:
    """Write one offline HTML report of one or several runs, as ``mixnas dashboard`` does (several runs are
    compared side by side and as design spaces). ``out`` defaults to ``RUN/report.html`` for one run and
    ``report.html`` for several; ``js``: plotly.js ``inline`` or as a ``file`` beside the report;
    ``bootstrap``: resamples of the EDF bands. Every run is read before anything is written."""
    from mixnas.dashboard import build_report

    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if not loaded:
        raise MixnasError("a dashboard needs at least one run folder")
    data = [r.data for r in loaded]
    if bootstrap < 10:
        raise MixnasError("--bootstrap must be at least 10")
    target = Path(out) if out else (loaded[0].path / "report.html" if len(loaded) == 1 else Path("report.html"))
    info = build_report(data, target, js=js, n_boot=bootstrap)
    return Dashboard(target, info["bytes"], info["figures"], Path(info["files"]), info["files_bytes"])


# -- studies ---------------------------------------------------------------------------------------------------


@dataclass
class StudyRun:
    """A study run folder (:func:`run_study`, :func:`load_study_run`): every trial's key and result record
    (``None`` for one without a result file yet) and, when written, the report's files by extension (``md``,
    ``csv``, ``tex``, ``html``)."""

    path: Path
    name: str
    keys: list[str]
    results: list[dict[str, Any] | None]
    report: dict[str, Path] | None = field(default=None)

    @property
    def completed(self) -> list[str]:
        """The keys of the trials that completed."""
        return [k for k, r in zip(self.keys, self.results) if r is not None and r["status"] == OutcomeStatus.COMPLETED]

    @property
    def incomplete(self) -> list[str]:
        """The keys of the trials without a completed result (failed, or not run): ``resume=True`` runs them."""
        done = set(self.completed)
        return [k for k in self.keys if k not in done]

    def trials(self) -> pandas.DataFrame:
        """One row per trial: ``key``, ``label`` (its level), one column per factor with its value, ``seed``,
        ``status``, ``top1`` (validation, last epoch, %), ``test_top1``, ``epochs``, ``params``, ``macs``,
        ``wall_time_s``, ``digest``, ``reason``."""
        import pandas as pd

        keys = ("label", "seed", "status", "top1", "test_top1", "epochs", "params", "macs", "wall_time_s",
                "digest", "reason")
        rows = []
        for key, rec in zip(self.keys, self.results):
            rec = rec or {"status": "not run"}
            rows.append({"key": key, **{k: rec.get(k) for k in keys}, **dict(rec.get("level") or {})})
        return pd.DataFrame(rows).astype({"top1": "float64", "test_top1": "float64"})


def run_study(study: str | Path | Study, *, out: str | Path | None = None, resume: bool = False,
              data_dir: str | None = None, address: str | None = None, runner: str = "ray", report: bool = True,
              plugins: Sequence[str] = (), quiet: bool = False, add_mixer: str | None = None,
              match: str | None = None) -> StudyRun:
    """Run a study file (or a loaded :class:`~mixnas.study.Study`) as ``mixnas study run`` does: write every
    trial as a file in ``out`` (default ``runs/study-NAME``), train those without a completed result (through
    Ray Tune; ``runner="local"``: one after another in this process), then write the report unless ``report``
    is false. ``resume``: continue a run in ``out``. A trial that fails is recorded, not raised: see
    :attr:`StudyRun.incomplete`. The progress lines go to stderr and the summary to stdout unless ``quiet``.

    ``add_mixer`` (``FILE.py:NAME``, ``module:NAME`` or a registered name) adds that token mixer as one more
    level of the study file's mixer factor at the median MACs of its levels, the backbone's width (or, with
    ``match="depth"``, depth) adjusted: ``out/extended.yaml`` is written and run (:mod:`mixnas.vs_zoo`)."""
    from mixnas import study_run
    from mixnas.plugins import load_plugins
    from mixnas.study import load_study

    load_plugins(plugins, where="plugins")
    if address and runner == "local":
        raise MixnasError("--address needs the ray runner (drop --runner local)")
    if resume and not add_mixer and isinstance(study, (str, Path)):
        _reload_study_run_plugins(Path(study), out)
    if add_mixer:
        spec, folder = _with_mixer(study, add_mixer, match, out, resume, quiet)
    else:
        if match:
            raise MixnasError("--match goes with --add-mixer (the level whose MACs it matches)")
        spec = study if not isinstance(study, (str, Path)) else load_study(study)
        folder = Path(out) if out else Path(f"runs/study-{spec.name}")
    log = (lambda line: None) if quiet else None
    study_run.run_study(spec, folder, resume=resume, data_dir=data_dir, runner=runner, address=address, log=log)
    result = load_study_run(folder)
    result.report = study_run.report(folder) if report else None
    if not quiet:
        print(f"study {spec.name}: {len(result.completed)}/{len(result.keys)} trials completed"
              + (f"; report {result.report['md']}" if result.report else ""), flush=True)
    return result


def _reload_study_run_plugins(study_file: Path, out: str | Path | None) -> None:
    """Resuming: load the plugins the run folder recorded before the study file is read, so a study whose mixer
    came from ``--plugin`` alone resumes without it (as every other reader of a run does). The folder is ``out``
    or the default ``runs/study-NAME``, NAME peeked from the file (a file that cannot be read is left to
    :func:`~mixnas.study.load_study`, which names the mistake)."""
    from mixnas.plugins import reload_recorded
    from mixnas.yamlio import load_located

    if out is None:
        try:
            data = load_located(study_file, "a study file")
        except MixnasError:
            return
        name = data.get("name") if isinstance(data, dict) else None
        out = f"runs/study-{name if isinstance(name, str) else study_file.stem}"
    meta = Path(out) / "study.yaml"
    if meta.is_file():
        doc = load_located(meta, "the study run's record, study.yaml")
        reload_recorded(doc.get("plugins") if isinstance(doc, dict) else None, f"{meta}: plugins")


def load_study_run(path: str | Path) -> StudyRun:
    """Read a study run folder as it is now (``study.yaml`` and ``results/``, while it runs too), with its
    report's paths when the report was written; a folder that is not one is a MixnasError naming the file."""
    from mixnas.study_run import read_result
    from mixnas.yamlio import load_located

    folder = Path(path)
    meta = folder / "study.yaml"
    if not meta.is_file():
        raise MixnasError(f"{folder}: not a study run (no study.yaml; start one with mixnas study run)")
    doc = load_located(meta, "the study run's record, study.yaml")
    keys = doc.get("trials") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not isinstance(doc.get("name"), str) \
            or not all(isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_.+-]+", k) and k[0] != "." for k in keys):
        raise MixnasError(f"{meta}: not a study run's record (expected its name and 'trials', the list of its trial "
                          "keys); it was left as it is: run the study again with --resume to rewrite it")
    paths = {ext: folder / f"report.{ext}" for ext in ("md", "csv", "tex", "html")}
    return StudyRun(folder, doc["name"], list(keys), [read_result(folder, k) for k in keys],
                    paths if all(p.is_file() for p in paths.values()) else None)


def _with_mixer(study: str | Path | Study, target: str, match: str | None, out: str | Path | None, resume: bool,
                quiet: bool) -> tuple[Study, Path]:
    """The study file extended by ``target`` at matched MACs (written to the run folder), and that folder."""
    from mixnas.study import load_study
    from mixnas.study_run import matched_lines
    from mixnas.vs_zoo import add_mixer

    if not isinstance(study, (str, Path)):
        raise MixnasError("add_mixer extends a study file: pass its path, not a loaded Study")
    if match not in (None, "width", "depth"):
        raise MixnasError(f"match must be width or depth, found {match!r}")
    file, folder = add_mixer(study, target, match or "width", out, resume)
    spec = load_study(file)
    if not quiet:
        print(f"study {spec.name}: {file} adds {target}; " + "; ".join(matched_lines(spec.to_dict())), flush=True)
    return spec, folder


def study_report(run: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``.csv``, ``.tex`` and ``.html`` of a study run folder from its result files (into
    ``out``, default the run folder), as ``mixnas study report`` does; returns the paths by extension."""
    from mixnas.study_run import report

    return report(run, out)


__all__ = ["Dashboard", "InvalidCandidate", "Run", "Space", "StudyRun", "load_run", "load_space", "load_study_run",
           "run_study", "search", "study_report", "write_dashboard"]
