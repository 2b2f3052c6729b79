"""The words mixnas describes trials in, defined once: metrics, trial statuses and the categories of a run.

Kept free of mixnas imports, so the space language, the search driver, the run readers, the study runner
and the dashboard all read the same table (a metric added here is an objective everywhere at once).

* :data:`METRICS`: each metric's direction, how it is labelled (titles, axes, table columns, hover units) and
  plotted; :data:`SEARCH_METRICS` are those a search's trials report (the objectives a space may ask for),
  :data:`STUDY_METRICS` those a study's result files hold.
* :class:`Status`: what a search trial records as its ``status`` (``completed``, ``pruned``, ...);
  :class:`OutcomeStatus`: how a trial body says its training ended; :class:`Category`: how the run readers
  and the dashboard sort a run's trials. All are ``str`` enums: stored values, CSV and JSON files read the
  same as when they were plain strings, and a stored string compares equal to its member.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One metric a trial reports: its direction and how it is written and plotted."""

    name: str
    direction: str  # "max" or "min": the only direction it may be optimised in
    title: str  # in figure titles and hover text ("top-1")
    axis: str  # an axis title, with the unit as plotted ("MACs (M)")
    column: str  # a table header ("params (M)")
    unit: str = ""  # after a value in hover text (" %")
    scale: float = 1.0  # plotted as value * scale (counts in millions)
    curve_key: str | None = None  # its name in a trial's per-epoch curve rows, when it comes from training

    @property
    def spec(self) -> str:
        """``metric:direction``, as objectives are written."""
        return f"{self.name}:{self.direction}"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("top1", "max", "top-1", "top-1 (%)", "top-1 (%)", " %", curve_key="val_top1"),
    Metric("macs", "min", "MACs", "MACs (M)", "MACs (M)", scale=1e-6),
    Metric("params", "min", "parameters", "parameters (M)", "params (M)", scale=1e-6),
    Metric("latency_ms", "min", "latency", "latency (ms)", "latency (ms)", " ms"),
    Metric("test_top1", "max", "test top-1", "test top-1 (%)", "test top-1 (%)", " %"),
    Metric("wall_time_s", "min", "wall time", "wall time (s)", "wall time (s)", " s"),
)}

# What a search's trials report (validation top-1 from training; MACs, params and latency from the cheap
# checks): the objectives a space or ``--objectives`` may name, in the order messages list them.
SEARCH_METRICS = ("top1", "macs", "params", "latency_ms")
DIRECTIONS: dict[str, str] = {m: METRICS[m].direction for m in SEARCH_METRICS}
COSTS = tuple(m for m in SEARCH_METRICS if METRICS[m].curve_key is None)  # fixed per architecture
# What a study's result files hold per trial (top-1 is validation's last epoch, test_top1 the test split's).
STUDY_METRICS = ("top1", "test_top1", "params", "macs", "wall_time_s")


def search_values(row: Mapping[str, Any] | None, costs: Mapping[str, Any]) -> dict[str, Any]:
    """Every search metric of a trial at one epoch: the trained ones from its curve ``row`` (None before the
    first epoch), the costs from ``costs`` (its checks: ``macs``, ``params``, ``latency_ms``; None if absent)."""
    out = {}
    for name in SEARCH_METRICS:
        key = METRICS[name].curve_key
        out[name] = (row or {}).get(key) if key else costs.get(name)
    return out


class Status(enum.StrEnum):
    """A search trial's recorded ``status`` (its user attribute; Optuna's state says COMPLETE / PRUNED / FAIL)."""

    COMPLETED = "completed"  # trained the full fidelity with finite objectives (COMPLETE)
    PRUNED = "pruned"  # stopped early by the scheduler (PRUNED)
    FAILED = "failed"  # diverged, crashed, no finite objective, or re-queued after a crash (FAIL)
    INFEASIBLE = "infeasible"  # over a budget: never trained (PRUNED)
    INVALID = "invalid"  # the sampled parameters make no architecture: never trained (PRUNED)


SKIPPED = (Status.INFEASIBLE, Status.INVALID)  # recorded, never trained, not counted in --trials
REUSABLE = (Status.COMPLETED, Status.PRUNED)  # a repeat of the architecture reuses the result


class OutcomeStatus(enum.StrEnum):
    """How a trial body says one training ended (:class:`mixnas.trial.Outcome`; a study's result files keep it)."""

    COMPLETED = "completed"
    STOPPED = "stopped"  # by the scheduler
    DIVERGED = "diverged"
    TIMEOUT = "timeout"
    ERROR = "error"


class TrainStatus(enum.StrEnum):
    """What ``mixnas train``'s metrics file says of a run: its :class:`OutcomeStatus` once it ended, and the
    states a reader may find while it runs or after it was interrupted or failed."""

    RUNNING = "running"
    COMPLETED = OutcomeStatus.COMPLETED.value
    STOPPED = OutcomeStatus.STOPPED.value
    DIVERGED = OutcomeStatus.DIVERGED.value
    TIMEOUT = OutcomeStatus.TIMEOUT.value
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class Category(enum.StrEnum):
    """Where a run's trial belongs in the run readers, the dashboard's plots and its trials table."""

    PARETO = "pareto"  # COMPLETE, on the front of the run's objectives
    DOMINATED = "dominated"  # COMPLETE, off the front
    PRUNED = "pruned"
    INFEASIBLE = "infeasible"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"  # a re-used result, or a second COMPLETE record of one architecture
    REQUEUED = "requeued"  # left RUNNING by a crashed driver, failed and its parameters queued again
    RUNNING = "running"
    WAITING = "waiting"  # queued, not yet asked


__all__ = ["COSTS", "DIRECTIONS", "METRICS", "REUSABLE", "SEARCH_METRICS", "SKIPPED", "STUDY_METRICS", "Category",
           "Metric", "OutcomeStatus", "Status", "search_values"]
