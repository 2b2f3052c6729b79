"""Cheap checks before any training: complexity, measured latency and budget constraints.

``check_candidate`` turns a sampled :class:`ArchConfig` into the numbers a search needs before it spends
a second of training: params and MACs (cached by digest), latency when a latency budget or objective asks
for it, and one constraint value per budget in Optuna's convention (``<= 0`` feasible). Values are
relative (``value / limit - 1``) so constrained samplers see budgets of different units on one scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mixnas.config import ArchConfig
from mixnas.space import Constraints


@dataclass(frozen=True)
class CandidateCheck:
    digest: str
    params: int
    macs: int
    latency_ms: float | None
    constraints: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())

    @property
    def violated(self) -> list[str]:
        return [k for k, v in self.constraints.items() if v > 0]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "feasible": self.feasible}


def measure_candidate_latency(arch: ArchConfig, constraints: Constraints) -> float:
    from mixnas.latency import measure_latency

    lat = measure_latency(arch, batch_size=constraints.latency_batch_size, device=constraints.latency_device,
                          threads=constraints.latency_threads, warmup=3, repeats=10)
    return lat.median_ms


def check_candidate(arch: ArchConfig, constraints: Constraints, latency: bool = False) -> CandidateCheck:
    """Complexity (and latency when asked or budgeted) of ``arch`` and its constraint values."""
    from mixnas.complexity import complexity

    cost = complexity(arch)
    lat = None
    if latency or constraints.max_latency_ms is not None:
        lat = measure_candidate_latency(arch, constraints)
    return CandidateCheck(cost.digest, cost.params, cost.macs, lat,
                          constraint_values(cost.params, cost.macs, lat, constraints))


def constraint_values(params: float, macs: float, latency_ms: float | None,
                      constraints: Constraints) -> dict[str, float]:
    """One value per budget, ``value / limit - 1`` (``<= 0`` feasible)."""
    values = {}
    if constraints.max_params is not None:
        values["max_params"] = params / constraints.max_params - 1.0
    if constraints.max_macs is not None:
        values["max_macs"] = macs / constraints.max_macs - 1.0
    if constraints.max_latency_ms is not None:
        values["max_latency_ms"] = latency_ms / constraints.max_latency_ms - 1.0
    return values
