"""Search efficiency on a benchmark table: replay strategies, score their fronts against the table's truth.

Pure functions over plain data (the bench script in ``bench/simulated_search.py`` runs the strategies and
renders tables and figures):

* :class:`Scale`: objectives mapped to [0, 1] for minimisation by the table's range (top-1 linearly, costs
  such as MACs and latency on a log scale, since they span orders of magnitude); the hypervolume reference
  point is 1.1 in every coordinate (10 % beyond the table's worst value, as the dashboard's), and every
  hypervolume is reported as a share of the table's true front's (1.0 = the whole true front found).
* :func:`replay`: one strategy at one seed on a table: the real :class:`mixnas.search_driver.Search` with an
  in-memory study and no files, driven by :class:`mixnas.simulate.SimulatedRunner` until a simulated time
  budget; returns when each architecture was completed.
* :func:`returned` / :func:`score`: what a run returns is the front of its completed trials *by the values
  the search recorded* (at the fidelity it trained them to); it is scored at the table's highest fidelity
  (``table_points``), so a cheap fidelity that misranks architectures costs the search there.
* :func:`hv_curve`, :func:`time_to_reach`, :func:`recovery`: hypervolume against simulated compute, the
  compute a run needed to reach a target, and the share of the true front a run's front holds.

Compute is measured in worker-seconds of the simulated clock (``workers x`` simulated wall time), the same
for every strategy at the same instant, so "equal compute" is "equal budget".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mixnas.pareto import hypervolume, pareto_front
from mixnas.vocab import COSTS, OutcomeStatus, search_values

REFERENCE = 1.1
LOG_METRICS = COSTS  # counts and times: compared on a log scale


@dataclass(frozen=True)
class Scale:
    """Maps objective vectors (in their own units) to [0, 1]^d, minimised, by the table's range."""

    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of(cls, metrics: Sequence[str], directions: Sequence[str], points: Sequence[Sequence[float]]) -> Scale:
        cols = list(zip(*[[_tr(m, v) for m, v in zip(metrics, p)] for p in points]))
        return cls(tuple(metrics), tuple(directions), tuple(min(c) for c in cols), tuple(max(c) for c in cols))

    def __call__(self, values: Sequence[float]) -> tuple[float, ...]:
        out = []
        for m, d, lo, hi, v in zip(self.metrics, self.directions, self.low, self.high, values):
            x = (_tr(m, v) - lo) / (hi - lo) if hi > lo else 0.0
            out.append(1.0 - x if d == "max" else x)
        return tuple(out)

    def hv(self, points: Sequence[Sequence[float]]) -> float:
        return hypervolume([self(p) for p in points], ["min"] * len(self.metrics), [REFERENCE] * len(self.metrics))


def _tr(metric: str, v: float) -> float:
    return math.log10(max(float(v), 1e-12)) if metric in LOG_METRICS else float(v)


def table_points(table: Any, metrics: Sequence[str]) -> dict[str, list[float]]:
    """Digest -> objective values of every completed architecture at the table's highest fidelity."""
    out = {}
    for d, r in table.arch_records().items():
        if r.get("status") != OutcomeStatus.COMPLETED or not r.get("curve"):
            continue
        row = search_values(r["curve"][-1], {**r, "latency_ms": (r.get("measured") or {}).get("latency_ms")})
        vals = [row[m] for m in metrics]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            out[d] = [float(v) for v in vals]
    return out


def true_front(points: dict[str, list[float]], directions: Sequence[str]) -> set[str]:
    keys = list(points)
    return {keys[i] for i in pareto_front([points[k] for k in keys], directions)}


Event = tuple  # (sim_end, digest, values the search recorded for it): a trained COMPLETE trial


def returned(events: Sequence[Event], directions: Sequence[str], until: float = math.inf) -> list[str]:
    """The architectures a run returns by ``until``: the Pareto front of its completed trials by the values
    the search itself recorded (at the fidelity it trained them to), one entry per architecture."""
    seen: dict[str, list[float]] = {}
    for t, d, vals in events:
        if t <= until:
            seen.setdefault(d, list(vals))
    keys = list(seen)
    return [keys[i] for i in pareto_front([seen[k] for k in keys], directions)] if keys else []


def score(digests: Sequence[str], points: dict[str, list[float]], scale: Scale) -> float:
    """Hypervolume of ``digests`` at the table's highest fidelity (``points``): what the user gets."""
    return scale.hv([points[d] for d in digests if d in points])


def hv_curve(events: Sequence[Event], points: dict[str, list[float]], scale: Scale,
             grid: Sequence[float]) -> list[float]:
    """Hypervolume (at the table's highest fidelity) of what the run returns at each time in ``grid``;
    ``events`` sorted by time."""
    out = []
    for t in grid:
        out.append(score(returned(events, scale.directions, t), points, scale))
    return out


def time_to_reach(events: Sequence[Event], points: dict[str, list[float]], scale: Scale, target: float) -> float:
    """The first event time at which what the run returns reaches hypervolume ``target`` (inf if never)."""
    times = sorted({t for t, _, _ in events})
    for t in times:
        if score(returned(events, scale.directions, t), points, scale) >= target - 1e-12:
            return t
    return math.inf


def recovery(digests: Sequence[str], truth: set[str]) -> float:
    """Share of the true front's architectures among ``digests`` (what a run returns)."""
    return len(set(digests) & truth) / len(truth) if truth else 0.0


@dataclass(frozen=True)
class Strategy:
    """A search configuration to replay: a sampler, a scheduler and their settings."""

    name: str
    sampler: str
    scheduler: str
    eta: float = 2.0
    grace: int = 1
    max_epochs: int | None = None  # None: the table's
    options: tuple[tuple[str, Any], ...] = ()  # further SearchSettings fields, as (name, value) pairs


def replay(table: Any, space_path: str, strategy: Strategy, seed: int, *, objectives: str, workers: int,
           budget_s: float | None, trials: int, info: dict[str, Any] | None = None) -> list[Event]:
    """Run one strategy at one seed on ``table`` (no files, in-memory study); an :data:`Event` per trained
    COMPLETE trial, in the order they ended. ``info`` (if given) receives ``trials`` (all recorded),
    ``trained`` (architectures trained) and ``clock`` (the simulated time the run ended at: below the budget when it ran out of trials)."""
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.simulate import SimulatedRunner, validate

    recipe = table.build_train()
    settings = SearchSettings(space=space_path, out="/tmp/mixnas-replay-unused", trials=trials, objectives=objectives,
                              sampler=strategy.sampler, scheduler=strategy.scheduler,
                              max_epochs=strategy.max_epochs or table.epochs, grace=strategy.grace,
                              eta=strategy.eta, concurrency=workers,
                              storage="memory", study_name=f"{strategy.name}-s{seed}", seed=seed,
                              train={"fraction": recipe["fraction"], "val_fraction": recipe["val_fraction"]},
                              table=str(table.dir), max_sim_s=budget_s, record=False, **dict(strategy.options))
    search = Search(settings, space=_space_cache(space_path))
    validate(search, table)
    runner = SimulatedRunner(search, table, max_sim_s=budget_s)
    runner.run()
    if info is not None:
        info.update(trials=len(search.trials()), trained=search.counted, clock=runner.clock)
    events = []
    for t in search.trials():
        a = t.user_attrs
        if t.state.name == "COMPLETE" and "sim_end" in a:
            events.append((float(a["sim_end"]), a["digest"], tuple(float(v) for v in t.values)))
    return sorted(events)


_SPACES: dict[str, Any] = {}


def _space_cache(path: str) -> Any:
    from mixnas.space import load_space

    if path not in _SPACES:
        _SPACES[path] = load_space(path)
    return _SPACES[path]


__all__ = ["REFERENCE", "Event", "Scale", "Strategy", "hv_curve", "recovery", "replay", "returned", "score",
           "table_points", "time_to_reach", "true_front"]
