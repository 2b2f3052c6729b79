"""Syne Tune's multi-objective strategies replayed on a mixnas-bench table, through Syne Tune's own API.

The one module that imports ``syne_tune`` (a ``bench`` extra, never a runtime dependency of mixnas; see
docs/benchmarks.md for its install line). Syne Tune's schedulers decide everything they
decide in a live run: which configuration to try (``scheduler.suggest()``), and whether a trial goes on
after each epoch (``on_trial_result``); this harness only plays the part of Syne Tune's simulator backend,
on the same clock as :class:`mixnas.simulate.SimulatedRunner`: ``workers`` simulated workers, each epoch
costing its recorded training plus validation time, a worker handed the next suggestion the moment it
frees up.

Methods (Syne Tune 0.16.0):

* ``moasha``: ``MOASHA`` (Schmucker et al. 2021) with its default ``NonDominatedPriority`` (non-dominated
  sort, epsilon-net within a front), random configurations, ``reduction_factor`` 2 and ``grace_period`` as
  mixnas's MO-ASHA gets it (the same rungs), ``max_t`` the table's epochs.
* ``morea``: ``SingleFidelityScheduler`` with the ``regularized_evolution`` searcher, which for several
  metrics is ``MultiObjectiveRegularizedEvolution`` (MOREA): every trial trained to ``max_t``; population
  20 and sample size 5 (the defaults, 100 and 10, are sized for thousands of trials: at this budget
  population 100 would be random search).

A bug of Syne Tune 0.16.0 is worked around: ``NonDominatedPriority`` returns the items' *order*
(``nondominated_sort``: the indices of the items, best first) where both its callers, MO-ASHA's rung
(``Bracket.on_result``) and MOREA's parent choice, expect each item's *priority* (lower is better). With the
order read as priorities a dominated newcomer can outrank front members, and both methods scored below
random search. :class:`RankedPriority` hands them the inverse permutation (each item's place in that
order): the ranking Syne Tune documents, computed by its own ``nondominated_sort``.

Settings that favour the peer, so that a harness detail cannot be what it loses on:

* Objectives are handed over minimised and normalised by the table's range (top-1 linearly, costs on a log
  scale: :class:`mixnas.efficiency.Scale`), since the epsilon-net of ``NonDominatedPriority`` measures
  raw distances.
* Syne Tune has no de-duplication, and a flat configuration space (its spaces are not conditional: a token
  mixer's own parameter is a plain parameter that only matters when that mixer is drawn) repeats
  architectures. A suggestion of an architecture already tried is dropped and another one asked for (the
  scheduler never hears of it), so each architecture is trained at most once, as mixnas's de-duplication
  ensures for its own strategies. As in mixnas (``MAX_REPEAT_STREAK``), a run ends when 100 suggestions in a
  row repeat (the method has converged, or the space is exhausted).

Scoring is the same as for mixnas's strategies (:mod:`mixnas.efficiency`): the run returns the front of
the trials it trained to ``max_t``, scored at the table's highest fidelity.
"""

from __future__ import annotations

import heapq
import math
import random
from datetime import datetime
from typing import Any

METHODS = ("moasha", "morea")
VERSION = 2  # bumped when the harness changes what a replay returns (2: RankedPriority)


def ranked_priority() -> Any:
    """Syne Tune's non-dominated sort with epsilon-net, returned as each item's rank (see the module
    docstring: 0.16.0 returns the order instead)."""
    import numpy as np
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    class RankedPriority(NonDominatedPriority):
        def priority_unsafe(self, objectives: Any) -> Any:
            order = np.asarray(super().priority_unsafe(objectives))
            ranks = np.empty(len(order), dtype=int)
            ranks[order] = np.arange(len(order))
            return ranks

    return RankedPriority()


def config_space(space: Any) -> dict[str, Any]:
    """The space's parameters as a flat Syne Tune configuration space (every parameter a ``choice``)."""
    from syne_tune.config_space import choice

    out = {}
    for slot in space.params():
        values = slot.domain.values()
        if values is None:
            raise ValueError(f"{space.path}: {slot.name} is continuous; the Syne Tune peer needs a discrete space")
        out[slot.name] = choice(list(values))
    return out


def make_scheduler(method: str, cs: dict[str, Any], metrics: list[str], max_t: int, seed: int,
                   grace: int = 1) -> Any:
    if method == "moasha":
        from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

        return MOASHA(config_space=cs, metrics=metrics, do_minimize=True, time_attr="epoch", max_t=max_t,
                      grace_period=grace, reduction_factor=2, random_seed=seed,
                      multiobjective_priority=ranked_priority())
    if method == "morea":
        from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

        return SingleFidelityScheduler(cs, metrics=metrics, do_minimize=True, searcher="regularized_evolution",
                                       random_seed=seed, searcher_kwargs={
                                           "population_size": 20, "sample_size": 5, "random_seed": seed,
                                           "multiobjective_priority": ranked_priority()})
    raise ValueError(f"unknown Syne Tune method {method!r}; known: {', '.join(METHODS)}")


def replay(table: Any, space_path: str, method: str, seed: int, *, objectives: str, workers: int,
           budget_s: float, grace: int = 1, info: dict[str, Any] | None = None
           ) -> list[tuple[float, str, tuple[float, ...]]]:
    """One Syne Tune method at one seed on ``table`` until ``budget_s`` simulated seconds; the events of
    :func:`mixnas.efficiency.replay` (``(sim_end, digest, values)`` of each trial trained to ``max_t``)."""
    import numpy as np
    import optuna
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.scheduler import SchedulerDecision

    from mixnas.efficiency import Scale, table_points
    from mixnas.simulate import epoch_seconds
    from mixnas.space import load_space

    np.random.seed(seed)  # MOASHA and MOREA's random draws use numpy's global generator
    random.seed(seed)
    space = load_space(space_path)
    metrics = [o.split(":")[0] for o in objectives.split(",")]
    directions = [o.split(":")[1] for o in objectives.split(",")]
    scale = Scale.of(metrics, directions, list(table_points(table, metrics).values()))
    names = [f"{m}_scaled" for m in metrics]
    cs = config_space(space)
    max_t = table.epochs
    scheduler = make_scheduler(method, cs, names, max_t, seed, grace)
    records = table.arch_records()
    digests: dict[tuple, str] = {}
    tried: set[str] = set()

    def digest_of(config: dict[str, Any]) -> str:
        key = tuple(sorted(config.items()))
        if key not in digests:
            digests[key] = space.sample(optuna.trial.FixedTrial(dict(config)), task=None).digest()
        return digests[key]

    def cost(digest: str, epoch: int) -> float:
        curve = records[digest]["curve"]
        if epoch > len(curve):  # the epoch a diverged run failed in is not recorded, nor charged
            return 0.0
        return epoch_seconds(curve[epoch - 1])

    def values(digest: str, epoch: int) -> list[float]:
        rec = records[digest]
        row = {"top1": rec["curve"][epoch - 1]["val_top1"], "macs": rec["macs"], "params": rec["params"],
               "latency_ms": (rec.get("measured") or {}).get("latency_ms")}
        return [float(row[m]) for m in metrics]

    clock, seq, free = 0.0, 0, list(range(workers))
    heap: list[tuple[float, int, int, Any, str, int]] = []
    events, n_trials, streak = [], 0, 0
    while True:
        while free and clock < budget_s and streak < 100:
            suggestion = scheduler.suggest()
            if suggestion is None:
                break
            digest = digest_of(suggestion.config)
            if digest in tried:
                streak += 1
                continue
            streak = 0
            tried.add(digest)
            trial = Trial(trial_id=n_trials, config=suggestion.config, creation_time=datetime.now())
            n_trials += 1
            scheduler.on_trial_add(trial)
            seq += 1
            heapq.heappush(heap, (clock + cost(digest, 1), seq, free.pop(0), trial, digest, 1))
        if not heap:
            break
        clock, _, worker, trial, digest, epoch = heapq.heappop(heap)
        curve = records[digest]["curve"]
        if epoch > len(curve):  # a diverged record: the trial fails where the run diverged
            scheduler.on_trial_error(trial)
            free = sorted(free + [worker])
            continue
        raw = values(digest, epoch)
        ends = epoch >= max_t
        result = {"epoch": epoch, **dict(zip(names, scale(raw)))}
        if not ends and scheduler.on_trial_result(trial, result) == SchedulerDecision.STOP:
            ends = True
        elif ends:
            scheduler.on_trial_result(trial, result)
            scheduler.on_trial_complete(trial, result)
            events.append((clock, digest, tuple(raw)))
        if ends:
            free = sorted(free + [worker])
            continue
        seq += 1
        heapq.heappush(heap, (clock + cost(digest, epoch + 1), seq, worker, trial, digest, epoch + 1))
    if info is not None:
        info.update(trials=n_trials, trained=n_trials, clock=clock)
    return sorted(events)


def version() -> str:
    import syne_tune

    return getattr(syne_tune, "__version__", "?")


__all__ = ["METHODS", "VERSION", "config_space", "make_scheduler", "ranked_priority", "replay", "version"]


if __name__ == "__main__":  # a quick look: one seed of each method on the shipped table
    import sys

    from mixnas.tabular import SPACE_FILE, Table

    tab = Table(sys.argv[1] if len(sys.argv) > 1 else "bench/tables/fmnist32")
    for m in METHODS:
        inf: dict[str, Any] = {}
        ev = replay(tab, str(tab.dir / SPACE_FILE), m, 0, objectives="top1:max,macs:min", workers=2,
                    budget_s=1300.0, info=inf)
        print(m, len(ev), "completed of", inf["trials"], "trials; clock", round(inf["clock"]),
              "best", max((v[0] for _, _, v in ev), default=math.nan))
