"""Cheap checks before training: constraint values from cached complexity, reported to Optuna samplers."""

from __future__ import annotations

import optuna
import pytest

from mixnas.checks import check_candidate
from mixnas.complexity import complexity
from mixnas.optuna_io import record_check, record_invalid, trial_constraints
from mixnas.space import Constraints, InvalidCandidate, load_space
from mixnas.zoo.mlp_mixer import mixer_arch

SPACE = """\
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}
constraints: {max_params: 60K, max_macs: 2M}
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: {choice: [16, 64]}}
  stages:
    count: 1
    depth: {int: [1, 4]}
    token_mixer:
      mixer: {token_hidden_dim: 8}
      attention: {num_heads: {choice: [2, 3]}}
    channel_mixer: mlp
"""


def test_constraint_values_are_relative_budget_overshoots():
    arch = mixer_arch("m", 4, 16, 2, 8, 64, image_size=16, in_channels=1, num_classes=10)
    cost = complexity(arch)
    chk = check_candidate(arch, Constraints(max_params=cost.params * 2, max_macs=cost.macs / 2))
    assert chk.constraints["max_params"] == pytest.approx(-0.5)
    assert chk.constraints["max_macs"] == pytest.approx(1.0)
    assert not chk.feasible and chk.violated == ["max_macs"]
    assert chk.latency_ms is None
    assert check_candidate(arch, Constraints()).feasible


def test_latency_budget_measures_latency():
    arch = mixer_arch("m", 4, 16, 1, 8, 32, image_size=16, in_channels=1, num_classes=10)
    chk = check_candidate(arch, Constraints(max_latency_ms=1e6, latency_threads=1))
    assert chk.latency_ms is not None and chk.latency_ms > 0
    assert chk.constraints["max_latency_ms"] < 0


def test_constrained_sampler_receives_constraint_values(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    space = load_space(path)
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=4)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen_feasible = seen_infeasible = seen_invalid = False
    for _ in range(16):
        trial = study.ask()
        try:
            arch = space.sample(trial)
        except InvalidCandidate as err:
            record_invalid(trial, err, space.constraints)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            seen_invalid = True
            continue
        chk = check_candidate(arch, space.constraints)
        record_check(trial, chk, space.constraints)
        study.tell(trial, [0.5, float(chk.macs)])
        seen_feasible |= chk.feasible
        seen_infeasible |= not chk.feasible
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(set(trial_constraints(t)) == {"max_params", "max_macs"} for t in complete)
    assert seen_feasible and seen_infeasible and seen_invalid
    assert all((max(trial_constraints(t).values()) <= 0) == (t.user_attrs["params"] <= 60_000
                                                             and t.user_attrs["macs"] <= 2_000_000)
               for t in complete)
