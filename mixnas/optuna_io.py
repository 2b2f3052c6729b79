"""The one module that creates Optuna studies and samplers (so Optuna API churn touches one place)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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


def sample_candidates(space: Space, n: int, seed: int, max_attempts: int | None = None
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
            arch = space.sample(trial)
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
