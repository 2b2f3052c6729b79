"""The one module that creates Optuna studies and samplers (so Optuna API churn touches one place)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from mixnas.checks import CandidateCheck
from mixnas.config import ArchConfig
from mixnas.space import Constraints, InvalidCandidate, Space


def quiet() -> None:
    """Keep Optuna's per-trial INFO lines out of mixnas' own progress output."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def random_study(seed: int) -> optuna.Study:
    """An in-memory study with a seeded random sampler (for `space sample` and probes)."""
    quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def sample_candidates(space: Space, n: int, seed: int, max_attempts: int | None = None, task: Any = None
                      ) -> Iterator[tuple[dict[str, Any], ArchConfig | None, InvalidCandidate | None]]:
    """Yield ``(params, arch, None)`` for valid draws and ``(params, None, error)`` for invalid ones,
    until ``n`` valid candidates were produced or ``max_attempts`` draws were made."""
    study = random_study(seed)
    valid, attempts = 0, 0
    max_attempts = max_attempts or 50 * n
    while valid < n and attempts < max_attempts:
        attempts += 1
        trial = study.ask()
        try:
            arch = space.sample(trial, task=task)
        except InvalidCandidate as err:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            yield dict(trial.params), None, err
            continue
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        valid += 1
        yield dict(trial.params), arch, None


# -- constraints ---------------------------------------------------------------------------------------------


def constraint_names(constraints: Constraints) -> list[str]:
    """The budgets a space declares, in a fixed order."""
    return [k for k in ("max_params", "max_macs", "max_latency_ms") if getattr(constraints, k) is not None]


def record_check(trial: optuna.Trial, check: CandidateCheck, constraints: Constraints) -> None:
    """Attach the cheap checks to a trial: complexity, latency, and one Optuna constraint per budget
    (``<= 0`` feasible), which Optuna 5's constrained samplers (TPE, NSGA-II) learn from."""
    trial.set_user_attr("digest", check.digest)
    trial.set_user_attr("params", check.params)
    trial.set_user_attr("macs", check.macs)
    if check.latency_ms is not None:
        trial.set_user_attr("latency_ms", check.latency_ms)
    for name in constraint_names(constraints):
        trial.set_constraint(name, check.constraints[name])


def record_invalid(trial: optuna.Trial, error: InvalidCandidate, constraints: Constraints) -> None:
    """An invalid candidate violates every budget by one unit, so constrained samplers steer away from it."""
    trial.set_user_attr("invalid", str(error.error))
    for name in constraint_names(constraints):
        trial.set_constraint(name, 1.0)


def trial_constraints(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """The constraint values recorded on a finished trial."""
    return dict(trial.constraints)


# -- search studies --------------------------------------------------------------------------------------------

SAMPLERS = ("tpe", "nsga2", "nsga3", "gp", "random", "grid")


def storage_for(url: str) -> Any:
    """An Optuna storage from a URL: ``sqlite:///file.db`` / ``postgresql://...`` (RDB) or ``journal:PATH``
    (a JournalStorage file, which works on a shared file system without a database server), or ``memory``."""
    if url == "memory":  # nothing persists: benchmarks that replay thousands of short searches
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        _check_journal(Path(url[len("journal:"):]))
        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    return _rdb_storage(url)


def _check_journal(path: Path) -> None:
    """Refuse a journal file that is not whole: Optuna replays the records it can parse and appends after the
    rest, so a truncated or damaged file would lose trials silently and then break (AttributeError) on the
    next write. Every line must be one JSON record; nothing is changed."""
    import json

    from mixnas.errors import MixnasError

    if not path.exists():
        return
    if not path.is_file():
        raise MixnasError(f"{path}: the journal storage is not a file")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # another driver may be appending this very moment: look again
        import time

        time.sleep(0.3)
        again = path.read_bytes()
        data = again if again.endswith(b"\n") or len(again) != len(data) else data
    if data and not data.endswith(b"\n"):
        raise MixnasError(f"{path}:{len(data.splitlines())}: the journal's last record is cut short (the file was "
                          "truncated, or a write was interrupted); it was left as it is: restore it from a copy, or "
                          "remove that last line to keep the records before it")
    for number, line in enumerate(data.splitlines(), 1):
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            raise MixnasError(f"{path}:{number}: not an Optuna journal record (one JSON object per line); the "
                              "journal was left as it is: restore it from a copy, or start a new search in another "
                              "--out")


DB_DRIVERS = {"postgresql": "pip install 'mixnas[postgres]' (psycopg 3)",
              "mysql": "pip install pymysql and write the URL as mysql+pymysql://..."}


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given: a bare ``postgresql://`` names psycopg 3 (the ``postgres`` extra) where
    psycopg2 is not installed; SQLAlchemy 2.1 defaults to psycopg 3 anyway, 2.0 to psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def redact(url: str) -> str:
    """A storage URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, _, host = tail.rpartition("@")
        if ":" in creds:
            return f"{head}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def _rdb_storage(url: str, attempts: int = 6) -> optuna.storages.RDBStorage:
    """An RDB storage. Several drivers that first touch an empty database at the same moment race to create
    Optuna's tables, and PostgreSQL's ``CREATE TABLE`` is not atomic against another session's (the loser gets
    a unique violation on ``pg_type``, or a duplicate table, or a duplicate alembic stamp): such a failed set-up
    is retried, by which time the winner's tables exist. A missing driver module or an unreachable server is
    one error line."""
    import random
    import time

    import sqlalchemy.exc

    from mixnas.errors import MixnasError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(engine_url(url), engine_kwargs=kwargs)
        except ImportError:
            how = DB_DRIVERS.get(url.split(":", 1)[0].split("+", 1)[0], "install the database's Python driver")
            raise MixnasError(f"--storage {redact(url)}: the database driver is not installed; {how}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 + 0.4 * random.random())  # another driver is creating the tables
        except sqlalchemy.exc.OperationalError as err:
            reason = str(getattr(err, "orig", err)).strip().splitlines()
            raise MixnasError(f"--storage {redact(url)}: cannot open the database: "
                              f"{reason[0] if reason else type(err).__name__}") from None
        except sqlalchemy.exc.DatabaseError as err:  # a file that is not (or no longer) a whole database
            reason = str(getattr(err, "orig", err)).strip().splitlines()
            where = url[len("sqlite:///"):] if url.startswith("sqlite:///") else redact(url)
            raise MixnasError(f"{where}: not a readable Optuna study database "
                              f"({reason[0] if reason else type(err).__name__}); it was left as it is: restore it "
                              "from a copy, or start a new search in another --out") from None
    raise AssertionError("unreachable")


def sampler_defaults(kind: str, conditional: bool) -> dict[str, Any]:
    """mixnas's settings of each Optuna sampler (keyword arguments of its constructor). TPE's 16 start-up
    trials were chosen on mixnas-bench (``bench/search_levers.py``, seeds disjoint from the reported ones:
    with MO-ASHA they raised the final hypervolume over 8 while reaching random search's in under a third of
    the budget); the population of 8 and GP's start-up trials are sized for searches of tens of trials."""
    return {"tpe": {"multivariate": True, "group": conditional, "n_startup_trials": 16, "constant_liar": True},
            "nsga2": {"population_size": 8}, "nsga3": {"population_size": 8},
            "gp": {"n_startup_trials": 8, "warn_independent_sampling": False}, "random": {},
            "grid": {}}.get(kind, {})


def make_sampler(kind: str, seed: int, *, conditional: bool, grid: dict[str, list[Any]] | None = None,
                 options: dict[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """``tpe``: multivariate, grouped TPE (conditional spaces); ``nsga2``; ``nsga3`` (reference-point
    selection); ``gp``: Optuna's Gaussian-process sampler (several objectives through its log expected
    hypervolume improvement; the parameters of a conditional branch it cannot model are drawn at random);
    ``random``; ``grid`` (a discrete space). Constraint values set with ``trial.set_constraint`` are read by
    TPE, NSGA-II, NSGA-III and GP. Their settings are :func:`sampler_defaults`; ``options`` (keyword
    arguments of the sampler's constructor) override them."""
    from mixnas.errors import MixnasError, UnknownNameError

    quiet()
    classes = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
               "nsga3": optuna.samplers.NSGAIIISampler, "gp": optuna.samplers.GPSampler,
               "random": optuna.samplers.RandomSampler}
    if kind not in SAMPLERS or kind == "auto":
        raise UnknownNameError("sampler", kind, SAMPLERS)
    kwargs = {**sampler_defaults(kind, conditional), **(options or {}), "seed": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            if kind == "grid":
                return optuna.samplers.GridSampler(grid or {}, **kwargs)
            return classes[kind](**kwargs)
        except TypeError as err:
            raise MixnasError(f"sampler {kind}: options {sorted(options or {})} are not all arguments of "
                              f"{classes.get(kind, optuna.samplers.GridSampler).__name__} ({err})") from None


def study_exists(storage: Any, name: str) -> bool:
    return name in optuna.study.get_all_study_names(storage)


def open_study(storage: Any, name: str, directions: list[str], sampler: optuna.samplers.BaseSampler,
               resume: bool, join: bool = False) -> optuna.Study:
    """Create the study ``name`` (refused if it exists and ``resume`` is false) or load it (``resume``).
    ``join``: one of several drivers of one study (Optuna's distributed optimisation): create it, or load it
    when another driver did (also when both try at the same moment)."""
    from mixnas.errors import MixnasError

    quiet()
    if join:
        return _check_directions(optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, load_if_exists=True,
            directions=["maximize" if d == "max" else "minimize" for d in directions]), directions)
    exists = study_exists(storage, name)
    if exists and not resume:
        raise MixnasError(f"study {name!r} already exists in the storage; pass --resume to continue it, --join "
                          "to search it together with other drivers, or choose another --study-name / --out")
    if not exists and resume:
        raise MixnasError(f"--resume: no study {name!r} in the storage")
    if exists:
        return _check_directions(optuna.load_study(study_name=name, storage=storage, sampler=sampler), directions)
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, load_if_exists=False,
                               directions=["maximize" if d == "max" else "minimize" for d in directions])


def _check_directions(study: optuna.Study, directions: list[str]) -> optuna.Study:
    from mixnas.errors import MixnasError

    want = [optuna.study.StudyDirection.MAXIMIZE if d == "max" else optuna.study.StudyDirection.MINIMIZE
            for d in directions]
    if list(study.directions) != want:
        raise MixnasError(f"study {study.study_name!r} has directions "
                          f"{[d.name.lower() for d in study.directions]}, the objectives given need {directions}")
    return study


def load_existing(storage: Any, name: str) -> optuna.Study:
    from mixnas.errors import MixnasError

    quiet()
    if not study_exists(storage, name):
        raise MixnasError(f"no study {name!r} in the storage")
    return optuna.load_study(study_name=name, storage=storage)


# -- Optuna's private state: every access in this one place, each pinned by tests/test_optuna_io.py ---------
#
# Optuna has no public way to name a trial by its storage id, to set a user attribute on a trial whose Trial
# object is gone (a RUNNING trial a crashed driver left), or to read back one finished trial without loading
# every trial of the study; these three helpers use its private ``_trial_id`` and ``Study._storage``.


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a trial (a live ``Trial`` or a ``FrozenTrial``): unique across studies."""
    return trial._trial_id


def set_attrs(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial, attrs: dict[str, Any]) -> None:
    """Set user attributes on an unfinished trial of ``study``, also one whose Trial object was lost in a
    crash (a FrozenTrial read back from the storage)."""
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial_id(trial), key, value)


def frozen(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The stored record of one trial (after ``tell``), read without loading the study's other trials."""
    return study._storage.get_trial(trial_id(trial))


def param_importances(trials: list[Any], directions: list[str], params: list[str], target_index: int = 0,
                      seed: int = 0) -> dict[str, float]:
    """Optuna's fANOVA importances (normalised to sum to 1) of ``params`` for objective ``target_index``,
    over exactly ``trials`` (every one must have every parameter: Optuna's evaluators drop trials that do
    not). The trials are copied into an in-memory study; nothing is written to their storage."""
    quiet()
    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for d in directions])
    study.add_trials(trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.importance.get_param_importances(study, evaluator=evaluator, params=params,
                                                       target=lambda t: t.values[target_index])


def timeline_figure(storage_url: str, study_name: str) -> Any:
    """Optuna's own timeline plot (a plotly figure) of a stored study: each trial's span, by state."""
    study = load_existing(storage_for(storage_url), study_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.visualization.plot_timeline(study)


TrialState = optuna.trial.TrialState
FrozenTrial = optuna.trial.FrozenTrial
