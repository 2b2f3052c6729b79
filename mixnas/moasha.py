"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021), without Ray.

Rungs sit at ``grace * eta**k`` epochs below ``max_t``. When a trial reaches a rung its objective vector is
recorded there; it continues only if it is among the best ``ceil(n / eta)`` of the ``n`` vectors recorded at
that rung so far, ranked by non-dominated front and, within a front, by crowding distance (NSGA-II's
selection). The first trial at a rung always continues (as in asynchronous SHA). A trial with a missing or
NaN objective ranks last. :class:`mixnas.ray_io.MOASHAScheduler` is the thin Ray Tune wrapper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mixnas.pareto import rank_order

CONTINUE, STOP = "continue", "stop"


def rung_levels(grace: int, eta: float, max_t: int) -> list[int]:
    """Milestones (in epochs) where promotion is decided, ascending, all below ``max_t``."""
    if grace < 1 or eta <= 1 or max_t < 1:
        raise ValueError("MO-ASHA needs grace >= 1, eta > 1 and max_t >= 1")
    levels, t = [], float(grace)
    while round(t) < max_t:
        if not levels or round(t) > levels[-1]:
            levels.append(int(round(t)))
        t *= eta
    return levels


def promote(rung: Sequence[Sequence[float]], index: int, directions: Sequence[str], eta: float) -> bool:
    """Whether entry ``index`` of the vectors recorded at one rung is among the top ``ceil(n / eta)``."""
    order = rank_order(rung, directions)
    keep = max(1, math.ceil(len(rung) / eta))
    return order.index(index) < keep


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
