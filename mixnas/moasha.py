"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021), without Ray.

Rungs sit at ``grace * eta**k`` epochs below ``max_t``, rounded half up (``rung_levels(1, 2.5, 10)`` is
``[1, 3, 6]``). When a trial reaches a rung its objective vector is recorded there; it continues only if it
is among the best ``ceil(n / eta)`` of the ``n`` vectors recorded at that rung so far, ranked by
non-dominated front and, within a front, by crowding distance (NSGA-II's selection). The first trial at a
rung always continues (as in asynchronous SHA). The choices that decide which trials survive:

* **Ties in crowding distance** go from the best first objective outward (Syne Tune's order): the two ends
  of a 2-D front both have infinite crowding, and the more accurate end ranks first, so a newcomer with the
  best accuracy is not stopped merely because a cheaper trial came first.
* **Equal vectors tie**: a trial whose objective vector equals one ranked inside the kept share continues
  too (Ray's ASHA continues a value equal to its cut-off; [26.9, 26.9] at eta 2 keeps both).
* **Missing or NaN objectives** rank after every complete vector (never by the good values they do have).
* **Keep count** ``ceil(n / eta)`` (Syne Tune keeps ``floor(n / eta) + 1``, one more whenever ``eta``
  divides ``n``): the share asynchronous SHA promotes, and the more aggressive of the two.
* **Exact rung levels**: a result counts at a rung only when its epoch is that rung (Syne Tune takes the
  highest rung at or below). mixnas reports every epoch, so every rung is met exactly.

:class:`mixnas.ray_io.MOASHAScheduler` is the thin Ray Tune wrapper; :class:`mixnas.trial.Stopper` the
in-process one (local and simulated runners).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mixnas.pareto import is_missing, rank_order

CONTINUE, STOP = "continue", "stop"


def rung_levels(grace: int, eta: float, max_t: int) -> list[int]:
    """Milestones (in epochs) where promotion is decided, ascending, all below ``max_t``."""
    if grace < 1 or eta <= 1 or max_t < 1:
        raise ValueError("MO-ASHA needs grace >= 1, eta > 1 and max_t >= 1")
    levels, t = [], float(grace)
    while (level := math.floor(t + 0.5)) < max_t:  # half up: Python's round() would take 2.5 to 2
        if not levels or level > levels[-1]:
            levels.append(level)
        t *= eta
    return levels


def keep_count(n: int, eta: float) -> int:
    """How many of the ``n`` vectors recorded at a rung continue: ``ceil(n / eta)``."""
    return max(1, math.ceil(n / eta))


def promote(rung: Sequence[Sequence[float]], index: int, directions: Sequence[str], eta: float) -> bool:
    """Whether entry ``index`` of the vectors recorded at one rung is among the top ``keep_count`` (or
    equal to a vector that is)."""
    order = rank_order(rung, directions)
    keep = keep_count(len(rung), eta)
    mine = tuple(rung[index])
    return any(i == index or (tuple(rung[i]) == mine and not any(is_missing(v) for v in mine))
               for i in order[:keep])


@dataclass
class MOASHA:
    """The asynchronous bookkeeping: which trial reached which rung with which objective vector."""

    directions: tuple[str, ...]
    max_t: int
    grace: int = 1
    eta: float = 3.0
    levels: list[int] = field(init=False)
    rungs: dict[int, dict[str, tuple[float, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        self.directions = tuple(self.directions)
        self.levels = rung_levels(self.grace, self.eta, self.max_t)
        self.rungs = {level: {} for level in self.levels}

    def on_result(self, trial_id: str, t: int, values: Sequence[float | None]) -> str:
        """Record the trial at the rung ``t`` reached (if any) and decide ``CONTINUE`` or ``STOP``."""
        if t >= self.max_t:
            return STOP
        if t not in self.rungs or trial_id in self.rungs[t]:
            return CONTINUE
        vec = tuple(math.nan if v is None else float(v) for v in values)
        self.rungs[t][trial_id] = vec
        ids = list(self.rungs[t])
        ok = promote([self.rungs[t][i] for i in ids], ids.index(trial_id), self.directions, self.eta)
        return CONTINUE if ok else STOP
