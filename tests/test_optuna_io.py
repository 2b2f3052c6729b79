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
