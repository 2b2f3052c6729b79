"""The Optuna adapter: samplers by name, their defaults and the options that override them."""

import optuna
import pytest

from mixnas.errors import MixnasError
from mixnas.optuna_io import make_sampler


def test_sampler_defaults_and_options():
    tpe = make_sampler("tpe", 3, conditional=True)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._n_startup_trials == 16
    assert make_sampler("tpe", 3, conditional=True, options={"n_startup_trials": 20})._n_startup_trials == 20
    nsga = make_sampler("nsga2", 0, conditional=False, options={"population_size": 24})
    assert isinstance(nsga, optuna.samplers.NSGAIISampler) and nsga._population_size == 24
    assert make_sampler("nsga3", 0, conditional=False)._population_size == 8


def test_unknown_sampler_option_is_a_clear_error():
    with pytest.raises(MixnasError, match="sampler nsga2: options \\['populaton_size'\\]"):
        make_sampler("nsga2", 0, conditional=False, options={"populaton_size": 24})
    with pytest.raises(MixnasError, match="unknown sampler"):
        make_sampler("cma", 0, conditional=False)


# -- Optuna's private state, read only in mixnas.optuna_io: these fail loudly when Optuna changes it ---------


@pytest.mark.parametrize("url", ["memory", "sqlite"])
def test_private_trial_id_and_storage_access(tmp_path, url):
    """``trial_id``, ``set_attrs`` and ``frozen`` use Optuna's private ``_trial_id`` and ``Study._storage``
    (no public API names a trial by its storage id): a live Trial and a FrozenTrial must share the id, a
    FrozenTrial of a RUNNING trial must take user attributes, and a told trial must read back alone."""
    from mixnas import optuna_io

    storage = optuna_io.storage_for("memory" if url == "memory" else f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    trial = study.ask()
    assert hasattr(trial, "_trial_id") and hasattr(study, "_storage"), "Optuna renamed its private trial state"
    (running,) = study.get_trials(deepcopy=False)
    assert optuna_io.trial_id(trial) == optuna_io.trial_id(running)
    optuna_io.set_attrs(study, running, {"status": "failed", "requeued": True})
    assert study.get_trials(deepcopy=False)[0].user_attrs == {"status": "failed", "requeued": True}
    study.tell(trial, [1.0, 2.0])
    done = optuna_io.frozen(study, trial)
    assert isinstance(done, optuna.trial.FrozenTrial)
    assert (done.number, done.state.name, done.values) == (0, "COMPLETE", [1.0, 2.0])
    assert done.user_attrs["requeued"] is True
