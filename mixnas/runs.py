"""A run and its trials, read the same way by the search console, the run readers and the dashboard.

One definition each of what the search driver (:mod:`mixnas.search_driver`) and the readers of a finished run
(:mod:`mixnas.analysis`, :mod:`mixnas.dashboard`) both need, so their numbers cannot drift apart:

* :func:`category`: the :class:`~mixnas.vocab.Category` of one trial from its state and record;
* :func:`unique_front`: the Pareto front of a run (COMPLETE trials, one per architecture);
  :func:`front_trials` over Optuna's trials;
* :func:`trial_counts`: the counts the progress line, the summary and the dashboard print;
* :func:`trial_fields`: the recorded fields of one trial (what ``trials.csv`` and the readers' records hold);
* :func:`lock_run_folder`: one driver per run folder (searches and study runs alike).

Trials are Optuna ``FrozenTrial`` objects or anything with ``number``, ``state``, ``values`` and
``user_attrs``; nothing here imports Optuna.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mixnas.errors import MixnasError
from mixnas.pareto import pareto_front
from mixnas.util import is_finite
from mixnas.vocab import SEARCH_METRICS, SKIPPED, Category

T = TypeVar("T")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")  # Optuna states of a trial that was told


def category(state: str, status: Any, duplicate_of: Any = None, requeued: Any = False) -> Category:
    """A trial's category from its Optuna ``state`` and its record: running, waiting (queued, not yet asked),
    infeasible / invalid (never trained), requeued (left RUNNING by a crashed driver, failed and its
    parameters queued again: it ran again as another trial), duplicate (a re-used result), then by state:
    pruned, failed, or dominated for every COMPLETE trial (until :func:`unique_front` says which are on the
    front and which repeat an architecture)."""
    if state == "RUNNING":
        return Category.RUNNING
    if state not in FINISHED:
        return Category.WAITING
    if status in SKIPPED:
        return Category(status)
    if state == "FAIL" and requeued:
        return Category.REQUEUED
    if duplicate_of is not None:
        return Category.DUPLICATE
    return {"COMPLETE": Category.DOMINATED, "PRUNED": Category.PRUNED}.get(state, Category.FAILED)


def unique_front(complete: Sequence[T], digest: Callable[[T], Any], values: Callable[[T], Sequence[Any]],
                 directions: Sequence[str]) -> tuple[list[T], list[T]]:
    """``(unique, front)`` of a run's COMPLETE trials: ``unique`` keeps the first trial of each architecture
    (by ``digest``, in the given order), ``front`` the Pareto-optimal ones among them over ``values`` (a
    missing or non-finite value leaves a trial off the front)."""
    unique, seen = [], set()
    for item in complete:
        if digest(item) not in seen:
            seen.add(digest(item))
            unique.append(item)
    idx = pareto_front([list(values(item)) for item in unique], list(directions))
    return unique, [unique[i] for i in idx]


def front_trials(trials: Sequence[Any], directions: Sequence[str]) -> list[Any]:
    """The Pareto-optimal COMPLETE trials (full fidelity) over their told values, one per digest (the first
    trial of each architecture). A trial with fewer values than ``directions`` (a study read against another
    record's objectives) has a missing value and is left out, as a NaN one is."""
    n = len(directions)
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values is not None]
    return unique_front(complete, lambda t: t.user_attrs.get("digest"),
                        lambda t: [t.values[i] if i < len(t.values) else None for i in range(n)], directions)[1]


COUNT_KEYS = ("trials", "trained", "complete", "pruned", "failed", "reused", "infeasible", "invalid", "requeued",
              "running", "waiting", "pareto", "best_top1")
_COUNTED_AS = {Category.DOMINATED: "complete", Category.PRUNED: "pruned", Category.FAILED: "failed",
               Category.DUPLICATE: "reused", Category.INFEASIBLE: "infeasible", Category.INVALID: "invalid",
               Category.REQUEUED: "requeued", Category.RUNNING: "running", Category.WAITING: "waiting"}


def trial_counts(trials: Sequence[Any], metrics: Sequence[str], directions: Sequence[str]) -> dict[str, Any]:
    """The numbers of a study that the search console (progress line, summary) and the dashboard both show,
    from its trials alone: ``trials`` (every record), ``trained`` = ``complete + pruned + failed`` (the
    architectures trained, what ``--trials`` counts: re-used repeats, infeasible and invalid candidates and
    re-queued trials are recorded but not trained), ``reused`` (finished records that re-used a recorded
    architecture's result, ``duplicate_of``, whatever its state; a repeat that waited for a trial that failed
    included), ``infeasible``, ``invalid``, ``requeued`` (left RUNNING by a crashed driver, failed and their
    parameters queued again), ``running``, ``waiting`` (queued, not yet asked), ``pareto`` (the size of
    :func:`front_trials`) and ``best_top1`` (the best told top-1 of a COMPLETE trial; None when top-1 is not
    an objective or nothing completed). Every record is in exactly one of ``trained``, ``reused``,
    ``infeasible``, ``invalid``, ``requeued``, ``running`` and ``waiting`` (its :func:`category`)."""
    c: dict[str, Any] = {k: 0 for k in COUNT_KEYS}
    top1: list[float] = []
    k = list(metrics).index("top1") if "top1" in metrics else None
    for t in trials:
        a = t.user_attrs
        key = _COUNTED_AS[category(t.state.name, a.get("status"), a.get("duplicate_of"), a.get("requeued"))]
        c["trials"] += 1
        c[key] += 1
        c["trained"] += key in ("complete", "pruned", "failed")
        if t.state.name == "COMPLETE" and k is not None and t.values is not None and k < len(t.values) \
                and is_finite(t.values[k]):
            top1.append(float(t.values[k]))
    c["pareto"] = len(front_trials(trials, directions))
    c["best_top1"] = max(top1) if top1 else None
    return c


def trial_fields(t: Any, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What one trial recorded, by name (None where it recorded nothing): number, Optuna state, status,
    digest, seed, fidelity, every search metric (the told ``objectives`` first, else the checks' user
    attribute), wall time, ``duplicate_of``, driver, the reason it was stopped or failed, ``requeued``.
    ``attrs``: its user attributes when the caller has checked them already (the run readers)."""
    a = t.user_attrs if attrs is None else attrs
    obj = a.get("objectives") or {}
    return {"number": t.number, "state": t.state.name, "status": a.get("status", ""), "digest": a.get("digest", ""),
            "seed": a.get("seed"), "fidelity": a.get("fidelity"),
            **{m: obj.get(m, a.get(m)) for m in SEARCH_METRICS},
            "wall_time_s": a.get("wall_time_s"), "duplicate_of": a.get("duplicate_of"), "driver": a.get("driver"),
            "reason": a.get("fail_reason", a.get("reason", "")), "requeued": bool(a.get("requeued"))}


# -- the run folder's lock ---------------------------------------------------------------------------------

LOCK_FILE = ".mixnas.lock"


def lock_run_folder(out: Path) -> Any:
    """Hold ``out``'s lock for as long as this driver runs: a second driver on the same run folder (two
    ``--resume`` at once) would interleave its trials and outputs with the first's, so it is refused. An
    advisory ``flock`` on a file in the folder: the OS drops it when the holder dies, even by ``kill -9``, so a
    crash never leaves a stale lock behind."""
    import fcntl

    fh = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held open until release()
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise MixnasError(f"{out}: another mixnas driver is running on this run folder ({holder}); wait for it "
                          "to end, or stop it, before resuming; two drivers on one run folder would interleave "
                          "their trials") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    fh.flush()
    return fh


__all__ = ["COUNT_KEYS", "FINISHED", "LOCK_FILE", "category", "front_trials", "lock_run_folder", "trial_counts",
           "trial_fields", "unique_front"]
