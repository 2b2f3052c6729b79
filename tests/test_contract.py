"""mixnas.contract: each check fails where it should, on a plugin's mixers, with a detail that says why.

``tests/test_mixer_contract.py`` runs the checks on every registered family (they pass); here a plugin file
(``tests/plugin_mixers.py``) registers one mixer that keeps the contract and one per way to break it, and each
broken one fails exactly its check. torch.compile is left out (30-40 s cold; tested on one family there).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from plugin_mixers import BROKEN, SOURCE, write_plugin

from mixnas import contract
from mixnas.plugins import load_plugin
from mixnas.registry import MixerContext, get_mixer

FAST = {"compile": "slow"}


@pytest.fixture
def plugin(tmp_path, forget):
    """The plugin file, loaded: its mixers are registered for the test only."""
    path = write_plugin(tmp_path)
    load_plugin(str(path))
    return path


def outcome(results: list[contract.CheckResult]) -> dict[str, contract.Status]:
    return {r.name: r.status for r in results}


def test_a_mixer_that_keeps_the_contract_passes_every_check(plugin):
    results = contract.check_mixer(get_mixer("token", "lowrank"), FAST)
    assert [r.name for r in results] == list(contract.CHECKS)
    failed = [r for r in results if r.failed]
    assert not failed, failed
    assert outcome(results)["compile"] is contract.Status.SKIPPED
    assert next(r for r in results if r.name == "compile").detail == "not run: slow"
    assert next(r for r in results if r.name == "parameters").detail == \
        "its declared parameter (rank_ratio) changes the module"
    ref = contract.reference(get_mixer("token", "lowrank"))
    assert (ref.dim, ref.grid) == (64, (8, 8))
    assert ref.params == 2 * 64 * 32 + 32 + 64  # down (64 -> 32 tokens) and up, with biases
    assert ref.macs == 2 * 64 * 32 * 64  # two token projections of 64 channels at batch 1


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_mixer_fails_exactly_its_check(plugin, name):
    check, words = BROKEN[name]
    results = contract.check_mixer(get_mixer("token", name), FAST)
    failed = {r.name: r.detail for r in results if r.failed}
    assert list(failed) == [check], failed
    assert words in failed[check]


def test_a_plugin_that_declares_its_operator_passes_the_count(plugin, tmp_path):
    """The fix the fvcore failure points to: the plugin registers aten::cumsum with a MAC handle."""
    declared = tmp_path / "declared.py"
    declared.write_text(
        "from mixnas.complexity import register_operator\n"
        "register_operator('aten::cumsum', lambda inputs, outputs: inputs[0][0] * inputs[0][1] * inputs[0][2])\n")
    load_plugin(str(declared))
    result = contract.check_fvcore(get_mixer("token", "cumulative"))
    assert result.status is contract.Status.PASSED, result.detail
    tokens, dim = 64, 64  # the reference context: an 8x8 grid at width 64, batch 1
    assert result.detail == f"{tokens * dim * dim + tokens * dim:,} MACs at batch 1, every operator counted"


def test_a_declared_rule_that_returns_no_count_fails_the_count_naming_it(plugin, forget):
    from mixnas.complexity import register_operator

    register_operator("aten::cumsum", lambda inputs, outputs: None)
    result = contract.check_fvcore(get_mixer("token", "cumulative"))
    assert result.failed and result.detail == ("the MAC handle registered for aten::cumsum returned None; it must "
                                               "return a non-negative int")


def test_an_exception_in_forward_names_the_plugin_file_and_line(plugin):
    line = SOURCE.splitlines().index('        raise ValueError("this mixer is not finished")') + 1
    result = contract.check_shape(get_mixer("token", "raises"))
    assert result.failed
    assert result.detail == f"ValueError at {plugin.resolve()}:{line}: this mixer is not finished"


def test_defaults_that_resolve_at_no_width_fail_once_and_the_rest_is_not_run(plugin, monkeypatch):
    monkeypatch.setattr(contract, "CANDIDATE_DIMS", (7,))
    family = replace(get_mixer("token", "lowrank"), rules=(lambda params, ctx: [("", f"width {ctx.dim} is odd")],))
    results = contract.check_mixer(family)
    assert results[0].failed and "no width in (7,)" in results[0].detail and "width 7 is odd" in results[0].detail
    assert all(r.status is contract.Status.SKIPPED for r in results[1:])
    assert contract.reference(family).params is None


def test_a_parameter_without_choices_of_an_unknown_kind_cannot_be_varied(plugin):
    family = get_mixer("token", "idle_param")
    family = replace(family, params=(replace(family.params[0], kind=str, default="x", min=None),))
    result = contract.check_parameter(family, "scale")
    assert result.failed and "declares no choices" in result.detail


def test_a_family_without_parameters_skips_the_parameter_check():
    result = contract.check_parameters(get_mixer("channel", "none"))
    assert result.status is contract.Status.SKIPPED and result.detail == "no declared parameters"


def test_compile_that_cannot_work_here_is_skipped_with_the_reason(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    contract._compile_unavailable.cache_clear()
    monkeypatch.setattr(torch, "compile", broken)
    try:
        result = contract.check_compile(get_mixer("channel", "mlp"))
    finally:
        contract._compile_unavailable.cache_clear()
    assert result.status is contract.Status.SKIPPED
    assert result.detail == "torch.compile does not work here: RuntimeError: no C++ compiler found"


def test_onnx_without_the_package_is_skipped(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    result = contract.check_onnx(get_mixer("channel", "mlp"))
    assert result.status is contract.Status.SKIPPED and "onnx package is not installed" in result.detail


def test_an_unknown_check_name_to_skip_is_refused():
    with pytest.raises(ValueError, match="unknown checks"):
        contract.check_mixer(get_mixer("channel", "mlp"), ("shapes",))


def test_the_reference_context_is_the_first_width_whose_defaults_resolve():
    family = get_mixer("token", "mixer")
    assert contract.contexts(family) == [MixerContext(64, (8, 8), 0), MixerContext(64, (8, 8), 1)]
