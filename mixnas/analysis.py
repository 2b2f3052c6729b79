"""Design-space analysis of search runs: plain data for ``mixnas dashboard`` (no plotting here).

Every function returns lists, dicts and floats that the tests check directly; :mod:`mixnas.dashboard` turns
them into plotly figures. Numbers come from the study (the durable record), read through
:mod:`mixnas.optuna_io`.

* :func:`load_run` reads a run folder into a :class:`Run` of plain trial records.
* :func:`classify` sorts trials into ``pareto`` / ``dominated`` (COMPLETE), ``pruned``, ``infeasible``,
  ``invalid``, ``failed``, ``duplicate`` (a re-used result), ``requeued``, ``running`` and ``waiting``: the
  :class:`mixnas.vocab.Category` that :func:`mixnas.runs.category` gives, the classification the search's
  own counts use.
* :func:`pareto_points`, :func:`hv_history`: fronts for any pair / triple of metrics, hypervolume against
  the trial count and against wall-clock time.
* :func:`edf`, :func:`edf_band`, :func:`complexity_weights`, :func:`design_space_edfs`: error EDFs with
  bootstrap bands, and complexity-normalised EDFs (Radosavovic et al. 2019, "On Network Design Spaces for
  Visual Recognition"; 2020, "Designing Network Design Spaces").
* :func:`param_trends`, :func:`parallel_dims`: top-1 against each architecture feature.
* :func:`importances`: parameter importance from Optuna's fANOVA evaluator, per subset of trials in which a
  conditional parameter exists.

Which trials count: the EDFs, trends, parallel coordinates and importances use COMPLETE trials (full
fidelity), one per architecture (re-used results are not new samples). Pruned trials stopped at lower
fidelity; their top-1 is not comparable and they appear only in the Pareto plots (as ``pruned``) and the table.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixnas import optuna_io
from mixnas.errors import MixnasError
from mixnas.pareto import hypervolume, pareto_front
from mixnas.plugins import reload_recorded
from mixnas.runs import category, trial_fields, unique_front
from mixnas.util import is_finite
from mixnas.vocab import DIRECTIONS, SEARCH_METRICS, Category
from mixnas.yamlio import LocatedError, exists, is_dir, is_file, load_located

COMPLETE = (Category.PARETO, Category.DOMINATED)  # the COMPLETE trials, one per architecture


@dataclass
class Run:
    """One search run folder, as plain records (one dict per trial, in trial-number order)."""

    name: str
    path: Path
    space: str
    objectives: list[tuple[str, str]]  # (metric, "max" | "min")
    max_epochs: int
    records: list[dict[str, Any]]
    trials: list[Any] = field(default_factory=list)  # the FrozenTrials (for the importance evaluators)
    storage_url: str = ""
    study_name: str = ""

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.objectives]

    def complete(self) -> list[dict[str, Any]]:
        """COMPLETE trials, one per architecture (no re-used results): the samples of the design space."""
        return [r for r in self.records if r["category"] in COMPLETE]

    def measured(self, metric: str) -> bool:
        return any(is_finite(r.get(metric)) for r in self.records)



# -- loading ---------------------------------------------------------------------------------------------------


def storage_url_of(run: Path, doc: dict[str, Any]) -> str:
    """The study's storage: the run folder's own ``study.db`` when the search used the default storage (so
    a copied or moved run folder reads its own copy), else the ``--storage`` it was given."""
    settings = doc.get("settings") or {}
    if not settings.get("storage") and is_file(run / "study.db"):
        return f"sqlite:///{(run / 'study.db').resolve()}"
    return str((doc.get("resolved") or {}).get("storage", ""))


def read_run_record(path: str | Path) -> dict[str, Any]:
    """A run folder's ``search.yaml``, checked for what the readers of a run use (the study's name and
    storage, the objectives, the fidelity); the file is untrusted: a mistake is one line naming the file,
    the line and the YAML path."""
    run = Path(path)
    if not is_dir(run):
        raise MixnasError(f"{run}: no such run folder" + (" (it is a file; give the run folder)" if exists(run)
                                                          else ""))
    meta = run / "search.yaml"
    if not exists(meta):
        raise MixnasError(f"{meta}: no such file: {run} is not a search run folder")
    doc = load_located(meta, "the search record, search.yaml")
    if not isinstance(doc, dict) or not isinstance(doc.get("resolved"), dict):
        raise LocatedError((str(meta), 1), "resolved", "a search.yaml written by mixnas search is a mapping with a "
                                                       "'resolved' mapping (the settings the search ran with)")
    res = doc["resolved"]

    def fail(key: str, message: str, node: Any = res) -> LocatedError:
        loc = node.loc(key) if hasattr(node, "loc") else None
        return LocatedError(loc or (str(meta), 1), f"resolved.{key}", message)

    if not isinstance(res.get("study_name"), str) or not res["study_name"]:
        raise fail("study_name", "expected the study's name (text)")
    objs = res.get("objectives")
    if not isinstance(objs, list) or not objs:
        raise fail("objectives", "expected a list such as [top1:max, macs:min]")
    for i, o in enumerate(objs):
        metric, _, direction = str(o).partition(":")
        if not isinstance(o, str) or metric not in DIRECTIONS or direction != DIRECTIONS[metric] \
                or sum(str(x).split(":")[0] == metric for x in objs) > 1:
            raise fail(i, f"{str(o)[:40]!r} is not an objective of a search; allowed: "
                          + ", ".join(f"{m}:{d}" for m, d in DIRECTIONS.items()) + " (each once)", objs)
    if res.get("max_epochs") is not None and (isinstance(res["max_epochs"], bool)
                                              or not isinstance(res["max_epochs"], int) or res["max_epochs"] < 0):
        raise fail("max_epochs", "expected a non-negative integer")
    if "storage" in res and not isinstance(res["storage"], str):
        raise fail("storage", "expected a storage URL (sqlite:///..., journal:PATH, postgresql://...)")
    for key in ("settings", "space"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise LocatedError(doc.loc(key), key, "expected a mapping")
    if isinstance(doc.get("settings"), dict) and doc["settings"].get("storage") is not None \
            and not isinstance(doc["settings"]["storage"], str):
        raise LocatedError(doc["settings"].loc("storage"), "settings.storage", "expected a storage URL or null")
    reload_recorded(doc.get("plugins"), f"{meta}: plugins")  # before any of its architectures is read
    return doc


def open_run_study(run: Path, doc: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """``(storage url, where, trials)`` of a run's study; ``where`` names the database file (or the URL) in
    messages. The database is untrusted too: a file that is not a study of that name, or that Optuna cannot
    read, is one error line naming it."""
    url = storage_url_of(run, doc)
    name = doc["resolved"]["study_name"]
    meta = run / "search.yaml"
    if url.startswith("sqlite:///"):
        where = url[len("sqlite:///"):]
        _check_sqlite(Path(where))
    elif url.startswith("journal:"):
        where = url[len("journal:"):]
        if not is_file(where):
            raise MixnasError(f"{where}: the study's journal file is missing (not a file; recorded in {meta})")
    elif url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "mysql"):
        head, _, tail = url.partition("://")
        where = f"{head}://{tail.rpartition('@')[2]}"  # no credentials in messages
    else:
        raise MixnasError(f"{meta}: resolved.storage: {url[:60]!r} is not a study storage; allowed: "
                          "sqlite:///FILE, journal:FILE, postgresql://..., mysql+DRIVER://...")
    try:
        study = optuna_io.load_existing(optuna_io.storage_for(url), name)
        trials = study.get_trials(deepcopy=False)
    except MixnasError as err:
        raise MixnasError(f"{where}: {err}") from None
    except Exception as err:  # noqa: BLE001 - Optuna / SQLAlchemy on a damaged database: many error types
        first = " ".join((str(err).strip().splitlines() or [""])[0].split())[:200]
        raise MixnasError(f"{where}: cannot read study {name!r}: {type(err).__name__}: {first}") from None
    return url, where, trials


def _check_sqlite(path: Path) -> None:
    """A study database must be an SQLite file with Optuna's tables; it is opened read-only here, so that
    reading a run never writes to it (Optuna would create its tables in an empty file)."""
    import sqlite3

    if not is_file(path):
        raise MixnasError(f"{path}: the study database is missing (expected an SQLite file written by mixnas "
                          "search)" + (": it is a directory" if is_dir(path) else ""))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except (sqlite3.Error, ValueError) as err:  # a damaged file: also names that are not UTF-8
        raise MixnasError(f"{path}: not a readable SQLite study database ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:100]}); it was left as it is (read only): restore it "
                          "from a copy") from None
    missing = {"studies", "trials", "trial_values", "trial_user_attributes", "version_info"} - tables
    if missing:
        raise MixnasError(f"{path}: not an Optuna study database (no table {', '.join(sorted(missing))})")


def load_run(path: str | Path) -> Run:
    """Read a run folder (``search.yaml`` and its study); :class:`MixnasError` when it is not one."""
    run = Path(path)
    doc = read_run_record(run)
    resolved = doc["resolved"]
    name, objectives = resolved["study_name"], [str(o) for o in resolved["objectives"]]
    url, where, trials = open_run_study(run, doc)
    objs = [(o.split(":")[0], o.split(":")[1]) for o in objectives]
    space = ((doc.get("space") or {}).get("name")) or Path(str((doc.get("settings") or {}).get("space", ""))).stem
    records = trial_records(trials, objs, where)
    classify(records, objs)
    return Run(name=run.resolve().name, path=run, space=str(space)[:200], objectives=objs,
               max_epochs=int(resolved.get("max_epochs") or 0), records=records, trials=trials,
               storage_url=url, study_name=name)


# What a trial's user attributes may hold (None allowed for each): the dashboard reads these.
ATTR_KINDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "digest": (str,), "fail_reason": (str,), "reason": (str,), "invalid": (str,),
    "fidelity": (int, float), "wall_time_s": (int, float), "params": (int, float), "macs": (int, float),
    "latency_ms": (int, float), "duplicate_of": (int,), "seed": (int,), "objectives": (dict,), "arch": (dict,),
    "requeued": (bool,)}


def checked_attrs(t: Any, where: str) -> dict[str, Any]:
    """A trial's user attributes, each the kind the readers expect (a damaged record is one error line)."""
    from mixnas.config import ArchConfig
    from mixnas.errors import ArchError

    a = dict(t.user_attrs)

    def bad(key: str, allowed: str) -> MixnasError:
        return MixnasError(f"{where}: trial {t.number}: user attribute {key!r}: expected {allowed}, found "
                           f"{json.dumps(a.get(key), default=str)[:60]}")

    for key, kinds in ATTR_KINDS.items():
        v = a.get(key)
        if v is not None and ((isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds)):
            raise bad(key, " or ".join(k.__name__ for k in kinds) + " or null")
    for v in (a.get("objectives") or {}).values():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad("objectives", "a mapping of metrics to numbers")
    if a.get("arch") is not None:
        try:
            a["arch"] = ArchConfig.from_dict(a["arch"]).to_dict()
        except ArchError as err:
            raise MixnasError(f"{where}: trial {t.number}: user attribute 'arch': {err}") from None
    try:
        constraints = t.constraints  # Optuna keeps them among the system attributes
    except Exception:  # noqa: BLE001 - whatever Optuna makes of a damaged attribute
        constraints = None
    if not isinstance(constraints, dict) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in constraints.values()):
        raise MixnasError(f"{where}: trial {t.number}: its constraint values must be numbers, found "
                          f"{json.dumps(t.system_attrs, default=str)[:80]}")
    for v in (t.values or []):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise MixnasError(f"{where}: trial {t.number}: objective values must be numbers, found {v!r:.40}")
    return a


def trial_records(trials: Sequence[Any], objectives: Sequence[tuple[str, str]],
                  where: str = "the study") -> list[dict[str, Any]]:
    """Plain records of FrozenTrials: state, status, metrics, times (seconds from the first trial's start),
    the architecture, its features and a one-line summary. ``where`` names the study's storage in the
    message about a damaged record."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    t0 = min(starts) if starts else None
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        a = checked_attrs(t, where)
        arch = a.get("arch")
        fields = trial_fields(t, a)
        rec = {k: fields[k] for k in ("number", "state", "status", "digest", "fidelity", "duplicate_of",
                                      "wall_time_s")}
        rec.update({"arch": arch, "params_opt": dict(t.params), "reason": fields["reason"],
                    "requeued": fields["requeued"]})
        for m in SEARCH_METRICS:
            rec[m] = float(fields[m]) if is_finite(fields[m]) else None
        if t.state.name == "COMPLETE" and t.values is not None:  # the told values are authoritative
            for (m, _), v in zip(objectives, t.values):
                rec[m] = float(v) if is_finite(v) else None
        rec["start_s"] = (t.datetime_start - t0).total_seconds() if t0 and t.datetime_start else None
        rec["end_s"] = (t.datetime_complete - t0).total_seconds() if t0 and t.datetime_complete else None
        rec["features"] = arch_features(arch) if isinstance(arch, dict) else {}
        rec["summary"] = arch_summary(arch) if isinstance(arch, dict) else a.get("invalid", "invalid candidate")
        out.append(rec)
    return out


def classify(records: list[dict[str, Any]], objectives: Sequence[tuple[str, str]]) -> None:
    """Set ``record["category"]`` (:func:`mixnas.runs.category`, as the search's own counts): ``pareto`` /
    ``dominated`` for COMPLETE trials (the front over the run's objectives, one record per architecture as in
    ``pareto.yaml``: a second COMPLETE record of an architecture is a ``duplicate``), else ``duplicate`` (a
    re-used result), ``pruned``, ``infeasible``, ``invalid``, ``requeued`` (a crashed driver's trial, failed
    and re-queued on resume: its parameters ran again as another trial, so it is counted apart and not
    plotted as a failure), ``failed``, ``running`` or ``waiting``."""
    for r in records:
        r["category"] = category(r["state"], r.get("status"), r.get("duplicate_of"), r.get("requeued"))
    complete = [r for r in records if r["category"] == Category.DOMINATED]
    metrics = [m for m, _ in objectives]
    unique, front = unique_front(complete, lambda r: r["digest"], lambda r: [r[m] for m in metrics],
                                 [d for _, d in objectives])
    for r in complete:
        r["category"] = Category.DUPLICATE
    for r in unique:
        r["category"] = Category.DOMINATED
    for r in front:
        r["category"] = Category.PARETO


# -- architectures ---------------------------------------------------------------------------------------------


def _joined(values: list[Any]) -> Any:
    """One value when all stages agree, else ``a/b/c``."""
    return values[0] if len(set(map(str, values))) == 1 else "/".join(map(str, values))


def arch_features(arch: dict[str, Any]) -> dict[str, Any]:
    """The architecture as flat, comparable features (the same names across spaces): layout, patch size,
    stem width, stages, total depth, depth and width per stage, final width, mixer families and their
    parameters (one value when tied across stages), channel-mixer ratio."""
    stages = arch.get("stages") or []
    stem = arch.get("stem") or {}
    f: dict[str, Any] = {"layout": arch.get("layout"), "patch_size": stem.get("patch_size"),
                         "stem_dim": stem.get("dim"), "stages": len(stages),
                         "depth": sum(int(s.get("depth", 0)) for s in stages)}
    if len(stages) > 1:
        for i, s in enumerate(stages):
            f[f"depth[{i}]"] = s.get("depth")
    f["width"] = stages[-1].get("dim") if stages else None
    if stages:
        f["token_mixer"] = _joined([s["token_mixer"]["name"] for s in stages])
        keys: list[str] = []
        for s in stages:
            keys += [k for k in s["token_mixer"] if k != "name" and k not in keys]
        for k in keys:
            f[k] = _joined([s["token_mixer"].get(k, "-") for s in stages])
        f["channel_mixer"] = _joined([s["channel_mixer"]["name"] for s in stages])
        ratios = [round(s["channel_mixer"].get("channel_hidden_dim", 0) / s["dim"], 3) for s in stages
                  if s.get("dim") and "channel_hidden_dim" in s["channel_mixer"]]
        if ratios:
            f["channel_ratio"] = _joined(ratios)
    return f


def arch_summary(arch: dict[str, Any]) -> str:
    """One line for hover text: families per stage, depths, widths, the token mixer's settings."""
    stages = arch.get("stages") or []
    stem = arch.get("stem") or {}
    fam = [s["token_mixer"]["name"] for s in stages]
    fams = fam[0] if len(set(fam)) == 1 else "/".join(fam)
    parts = [f"{arch.get('layout', '?')} {fams}",
             "depths " + "-".join(str(s.get("depth")) for s in stages),
             "widths " + "-".join(str(s.get("dim")) for s in stages),
             f"patch {stem.get('patch_size')}"]
    if stages:
        tm = {k: v for k, v in stages[0]["token_mixer"].items() if k != "name"}
        if tm:
            parts.append(", ".join(f"{k} {v}" for k, v in tm.items()))
        cm = stages[0]["channel_mixer"]
        ratio = (f" x{cm['channel_hidden_dim'] / stages[0]['dim']:g}" if "channel_hidden_dim" in cm
                 and stages[0].get("dim") else "")
        parts.append(f"{cm['name']}{ratio}")
    return " | ".join(parts)


# -- Pareto fronts and hypervolume -----------------------------------------------------------------------------


def pareto_points(run: Run, metrics: Sequence[str]) -> dict[str, Any]:
    """The points of a Pareto plot over ``metrics`` (each with its usual direction): per category the
    records that have all the metrics; ``front`` (the non-dominated COMPLETE records over these metrics,
    sorted by the second metric, the x axis) and ``dominated`` (the other COMPLETE ones), ``pruned`` (values at
    the lower fidelity they reached), and ``infeasible`` / ``failed`` records that have the cost metrics (their
    top-1 is unknown: the figure places them below the others)."""
    dirs = [DIRECTIONS[m] for m in metrics]
    has = [r for r in run.records if all(is_finite(r.get(m)) for m in metrics)]
    complete = [r for r in has if r["category"] in COMPLETE]
    idx = set(pareto_front([[r[m] for m in metrics] for r in complete], dirs))
    out: dict[str, Any] = {"metrics": list(metrics),
                           "front": sorted((r for i, r in enumerate(complete) if i in idx), key=lambda r: r[metrics[1]]),
                           "dominated": [r for i, r in enumerate(complete) if i not in idx]}
    out["pruned"] = [r for r in has if r["category"] == Category.PRUNED]
    costs = [m for m in metrics if m != "top1"]  # never trained (or no result): placed by their costs alone
    for cat in (Category.INFEASIBLE, Category.FAILED):
        out[cat] = [r for r in run.records if r["category"] == cat and all(is_finite(r.get(m)) for m in costs)]
    return out


def reference_point(runs: Sequence[Run]) -> tuple[list[float], list[float]]:
    """``(ideal, reference)`` for hypervolume over the runs' (shared) objectives: the best and the worst
    COMPLETE value of each objective over all runs, the reference moved 10 % of the range beyond the worst."""
    objs = runs[0].objectives
    ideal, ref = [], []
    for m, d in objs:
        vals = [r[m] for run in runs for r in run.complete() if is_finite(r.get(m))]
        if not vals:
            ideal.append(0.0)
            ref.append(1.0)
            continue
        lo, hi = min(vals), max(vals)
        pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 1.0
        ideal.append(hi if d == "max" else lo)
        ref.append(lo - pad if d == "max" else hi + pad)
    return ideal, ref


def hv_history(run: Run, ideal: Sequence[float], reference: Sequence[float]) -> dict[str, list[float]]:
    """Normalised hypervolume of the front of COMPLETE trials so far (1 = the box from ``reference`` to
    ``ideal``): against the number of architectures trained (re-used repeats, infeasible and invalid
    candidates are not counted, as in ``--trials``), in trial-number order, and against wall-clock seconds since the
    first trial started, in completion order."""
    metrics, dirs = run.metrics, run.directions
    box = math.prod(abs(r - i) for r, i in zip(reference, ideal)) or 1.0
    never = (Category.INFEASIBLE, Category.INVALID, Category.RUNNING, Category.WAITING, Category.DUPLICATE)
    counted = [r for r in run.records if r["category"] not in never]

    def curve(order: list[dict[str, Any]]) -> list[float]:
        pts, hv = [], []
        for r in order:
            if r["category"] in COMPLETE:
                pts.append([r[m] for m in metrics])
            hv.append(hypervolume(pts, dirs, list(reference)) / box if pts else 0.0)
        return hv

    timed = sorted((r for r in counted if r.get("end_s") is not None), key=lambda r: r["end_s"])
    return {"trials": list(range(1, len(counted) + 1)), "hv": curve(counted),
            "time_s": [r["end_s"] for r in timed], "hv_time": curve(timed)}


# -- EDFs ------------------------------------------------------------------------------------------------------


def edf(values: Sequence[float], grid: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """The (weighted) empirical distribution function ``F(x) = P(value <= x)`` at each grid point."""
    v = np.asarray(values, dtype=float)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=float)
    total = float(np.sum(w))
    if not len(v) or total <= 0:
        return [math.nan] * len(grid)
    order = np.lexsort((w, v))  # by value, then weight
    cum = np.cumsum(w[order])
    k = np.searchsorted(v[order], np.asarray(grid, dtype=float), side="right")
    return np.where(k > 0, cum[k - 1] / total, 0.0).tolist()


def edf_band(values: Sequence[float], grid: Sequence[float], weights: Sequence[float] | None = None,
             n_boot: int = 400, level: float = 0.95, seed: int = 0) -> tuple[list[float], list[float]]:
    """Pointwise bootstrap band of the EDF: resample the models with replacement ``n_boot`` times (their
    weights travel with them and are renormalised), and take the ``(1-level)/2`` and ``(1+level)/2``
    quantiles of the resampled EDFs at each grid point."""
    n = len(values)
    if n == 0:
        return [math.nan] * len(grid), [math.nan] * len(grid)
    rng = random.Random(seed)  # the resamples of before, drawn in the same order
    idx = np.array([[rng.randrange(n) for _ in range(n)] for _ in range(n_boot)], dtype=int).reshape(n_boot, n)
    v = np.asarray(values, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    draws = [edf(v[i], grid, w[i]) for i in idx if np.sum(w[i]) > 0]
    if not draws:
        return [math.nan] * len(grid), [math.nan] * len(grid)
    lo, hi = np.quantile(np.array(draws), [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo.tolist(), hi.tolist()


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile, linear between the order statistics (NaN for no values)."""
    return float(np.quantile(values, q)) if len(values) else math.nan


def complexity_weights(macs_per_space: Sequence[Sequence[float]], n_bins: int = 8
                       ) -> tuple[list[list[float]], list[float]]:
    """Weights that give every design space the same MACs distribution (Radosavovic et al. 2019, sec. 3:
    "normalized comparisons" reweight models so that the complexity distributions match).

    Bins are ``n_bins`` equal widths in log10(MACs) over the overlap of the spaces' MACs ranges; a bin counts
    only when every space has a model in it. Each counted bin gets total weight ``1 / (counted bins)`` in
    every space, shared equally by that space's models in the bin; models outside the counted bins weigh 0.
    So each space's weighted MACs histogram is the same (uniform over the shared bins). Returns ``(weights
    per space, bin edges)``; :class:`MixnasError` when the spaces' MACs ranges do not overlap."""
    logs = [[math.log10(m) for m in macs] for macs in macs_per_space]
    if not logs or any(not lg for lg in logs):
        raise MixnasError("complexity normalisation needs at least one model with MACs in every space")
    lo, hi = max(min(lg) for lg in logs), min(max(lg) for lg in logs)
    if lo > hi:
        raise MixnasError("the design spaces' MACs ranges do not overlap: no complexity-normalised comparison")
    if hi - lo < 1e-9:
        edges = [lo - 1e-6, hi + 1e-6]
    else:
        edges = [lo + (hi - lo) * k / n_bins for k in range(n_bins + 1)]

    def bin_of(x: float) -> int | None:
        if x < edges[0] - 1e-12 or x > edges[-1] + 1e-12:
            return None
        return min(max(bisect_right(edges, x) - 1, 0), len(edges) - 2)

    bins = [[bin_of(x) for x in lg] for lg in logs]
    shared = set(range(len(edges) - 1))
    for b in bins:
        shared &= {x for x in b if x is not None}
    if not shared:
        raise MixnasError("no MACs bin holds models of every design space: no complexity-normalised comparison")
    weights = []
    for b in bins:
        count = {k: b.count(k) for k in shared}
        weights.append([1.0 / (len(shared) * count[k]) if k in shared else 0.0 for k in b])
    return weights, [10 ** e for e in edges]


def design_space_edfs(runs: Sequence[Run], normalize: bool = False, n_boot: int = 400, seed: int = 0,
                      n_bins: int = 8) -> dict[str, Any]:
    """Error EDFs (error = 100 - top-1, %) of each run's COMPLETE models on one grid, with bootstrap bands;
    ``normalize`` reweights them to matched MACs distributions (:func:`complexity_weights`). Returns
    ``{"grid": [...], "runs": {name: {"F", "lo", "hi", "n", "weights", "macs", "errors"}}, "note": str}``."""
    samples = []
    for run in runs:
        rs = [r for r in run.complete() if is_finite(r.get("top1")) and is_finite(r.get("macs"))]
        samples.append((run, [100.0 - r["top1"] for r in rs], [r["macs"] for r in rs]))
    samples = [s for s in samples if s[1]]
    if not samples:
        return {"grid": [], "runs": {}, "note": "no COMPLETE trials"}
    note = ""
    weights: list[list[float] | None] = [None] * len(samples)
    if normalize:
        ws, edges = complexity_weights([s[2] for s in samples], n_bins)
        weights = list(ws)
        note = (f"reweighted to a common MACs distribution over {edges[0]:.3g}-{edges[-1]:.3g} MACs "
                f"({len(edges) - 1} log bins)")
    allv = sorted({e for _, errs, _ in samples for e in errs})
    pad = 0.02 * (allv[-1] - allv[0]) or 0.5
    grid = [allv[0] - pad] + allv + [allv[-1] + pad]
    out: dict[str, Any] = {"grid": grid, "runs": {}, "note": note}
    for (run, errs, macs), w in zip(samples, weights):
        lo, hi = edf_band(errs, grid, w, n_boot=n_boot, seed=seed)
        out["runs"][run_label(run, runs)] = {
            "F": edf(errs, grid, w), "lo": lo, "hi": hi, "errors": errs, "macs": macs,
            "weights": w if w is not None else [1.0] * len(errs),
            "n": len(errs) if w is None else sum(1 for x in w if x > 0)}
    if normalize:
        out["note"] += "; models weighted: " + ", ".join(f"{k} {v['n']}" for k, v in out["runs"].items())
    return out


def run_label(run: Run, runs: Sequence[Run]) -> str:
    """``space (folder)``, unique among ``runs``."""
    label = f"{run.space} ({run.name})" if run.space and run.space != run.name else run.name
    dup = [r for r in runs if (f"{r.space} ({r.name})" if r.space and r.space != r.name else r.name) == label]
    return label if len(dup) < 2 else f"{label} #{list(runs).index(run) + 1}"


# -- trends and parallel coordinates ---------------------------------------------------------------------------


def _sort_key(v: Any) -> tuple:
    return (0, float(v), "") if is_finite(v) else (1, 0.0, str(v))


def varying_features(records: Sequence[dict[str, Any]]) -> list[str]:
    """Architecture features with at least two distinct values among ``records`` (first-seen order)."""
    names: list[str] = []
    for r in records:
        names += [k for k in r["features"] if k not in names]
    return [k for k in names if len({str(r["features"].get(k)) for r in records}) > 1]


def param_trends(run: Run, metric: str = "top1") -> dict[str, dict[str, Any]]:
    """For each varying architecture feature: the COMPLETE trials' ``metric`` per value of the feature
    (``values``, ``points`` per value, and ``n``, ``mean``, ``median``, ``min``, ``max``, ``q25``, ``q75``)."""
    rs = [r for r in run.complete() if is_finite(r.get(metric))]
    out = {}
    for feat in varying_features(rs):
        groups: dict[Any, list[float]] = {}
        for r in rs:
            groups.setdefault(r["features"].get(feat, "n/a"), []).append(r[metric])
        values = sorted(groups, key=_sort_key)
        stats: dict[str, Any] = {"values": values, "points": [sorted(groups[v]) for v in values]}
        for key, fn in (("n", len), ("mean", lambda p: sum(p) / len(p)), ("median", lambda p: _quantile(p, 0.5)),
                        ("min", min), ("max", max), ("q25", lambda p: _quantile(p, 0.25)),
                        ("q75", lambda p: _quantile(p, 0.75))):
            stats[key] = [fn(p) for p in stats["points"]]
        out[feat] = stats
    return out


def parallel_dims(run: Run, metric: str = "top1") -> dict[str, Any]:
    """Parallel-coordinates data over the COMPLETE trials: one ordinal axis per varying feature (its distinct
    values sorted, numbers numerically; ``n/a`` where a conditional feature does not exist), and ``color``
    (the metric) per trial."""
    rs = [r for r in run.complete() if is_finite(r.get(metric))]
    dims = []
    for feat in varying_features(rs):
        raw = [r["features"].get(feat, "n/a") for r in rs]
        ticks = sorted(set(raw), key=_sort_key)
        dims.append({"label": feat, "values": [ticks.index(v) for v in raw], "tickvals": list(range(len(ticks))),
                     "ticktext": [str(t) for t in ticks]})
    return {"dims": dims, "color": [r[metric] for r in rs], "numbers": [r["number"] for r in rs]}


# -- parameter importance --------------------------------------------------------------------------------------


def importances(run: Run, metric: str = "top1", min_trials: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Parameter importance of ``metric`` from Optuna's fANOVA evaluator, correct for conditional parameters.

    Optuna's evaluators need every trial to have every parameter they evaluate (by default they keep only
    the parameters all trials share, so conditional ones vanish). Here the COMPLETE trials (one per
    architecture) are grouped by *which parameters exist*: one subset per distinct presence pattern (all
    trials; the trials of one mixer family; ...). Each subset's importances are evaluated on exactly the trials
    of that subset, over every parameter present in all of them, so a conditional parameter is ranked among
    the parameters that coexist with it. Returns one entry per subset with at least ``min_trials`` trials and
    a varying parameter: ``{"subset", "n", "of", "importances": {param: share}}``, largest subset first."""
    index = run.metrics.index(metric) if metric in run.metrics else 0
    keep = {r["number"] for r in run.complete()}
    trials = [t for t in run.trials if t.number in keep and t.values is not None]
    presence: dict[str, frozenset[int]] = {}
    for t in trials:
        for p in t.params:
            presence[p] = presence.get(p, frozenset()) | {t.number}
    subsets = sorted(set(presence.values()), key=lambda s: (-len(s), sorted(s)))
    out = []
    for subset in subsets:
        sub = [t for t in trials if t.number in subset]
        params = [p for p, s in presence.items() if subset <= s
                  and len({repr(t.params[p]) for t in sub}) > 1]
        if len(sub) < min_trials or not params:
            continue
        try:
            imp = {p: float(v) for p, v in optuna_io.param_importances(
                sub, [d for _, d in run.objectives], params, index, seed=seed).items()}
        except (RuntimeError, ValueError, ArithmeticError, AssertionError):
            continue  # fANOVA fails on trials of one value ("zero total variance") or of extreme ones: no ranking
        out.append({"subset": _subset_label(subset, trials), "n": len(sub), "of": len(trials),
                    "importances": dict(sorted(imp.items(), key=lambda kv: -kv[1]))})
    return out


def _subset_label(subset: frozenset[int], trials: Sequence[Any]) -> str:
    """``all trials``, or the parameter values that hold in the subset but not everywhere (e.g.
    ``arch.stages.token_mixer = strip``)."""
    if len(subset) == len(trials):
        return "all trials"
    sub = [t for t in trials if t.number in subset]
    conds = []
    for p in sub[0].params:
        vals = {repr(t.params.get(p)) for t in sub}
        if len(vals) == 1 and all(p in t.params for t in sub) and \
                len({repr(t.params.get(p)) for t in trials}) > 1 and isinstance(sub[0].params[p], str):
            conds.append(f"{p} = {sub[0].params[p]}")
    return ", ".join(conds) or f"{len(subset)} trials with the same parameters"


# -- the trials table ------------------------------------------------------------------------------------------


def table_rows(run: Run) -> list[dict[str, Any]]:
    """One row per trial: number, category, state, status, objectives and costs, fidelity, wall time, digest,
    summary, and ``pareto_file`` when the run folder has its ArchConfig YAML (``pareto/trial_NNNNN.yaml``)."""
    rows = []
    for r in run.records:
        pf = run.path / "pareto" / f"trial_{r['number']:05d}.yaml"
        rows.append({"number": r["number"], "category": r["category"], "state": r["state"], "status": r["status"],
                     **{m: r.get(m) for m in SEARCH_METRICS}, "fidelity": r.get("fidelity"),
                     "wall_time_s": r.get("wall_time_s"), "digest": r.get("digest", ""),
                     "summary": r["summary"], "reason": r.get("reason") or "",
                     "pareto_file": pf if r["category"] == Category.PARETO and pf.is_file() else None,
                     "arch": r.get("arch")})
    return rows
