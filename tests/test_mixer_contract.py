"""The mixer contract (:mod:`mixnas.contract`), checked for every registered family.

The tests are parametrised over :func:`mixnas.registry.mixer_families`, so a family registered later is
covered with no edit here. Each runs one of the library's checks (the same ones ``mixnas check-mixer`` runs
on a plugin's mixer) and fails with its detail: shape kept (with a class token too unless spatial),
deterministic under a seed, every operator counted by fvcore, gradients reach the input and every parameter,
every declared parameter changes the module. ``torch.compile`` (slow cold) runs on one family and the ONNX
export on five; ``tests/test_contract.py`` shows that each check fails where it should.
"""

from __future__ import annotations

import pytest

from mixnas import contract
from mixnas.errors import ArchError
from mixnas.registry import ROLES, MixerContext, MixerFamily, mixer_families

FAMILIES = [(role, name) for role in ROLES for name in sorted(mixer_families(role))]
FAMILY_IDS = [f"{role}:{name}" for role, name in FAMILIES]
PARAMS = [(role, name, p.name) for role, name in FAMILIES for p in mixer_families(role)[name].params]
PARAM_IDS = [f"{role}:{name}.{param}" for role, name, param in PARAMS]
COMPILED = [("channel", "mlp")]  # torch.compile takes 30-40 s cold on a CPU: one family shows it works
# ONNX export on strip and mlp, and on the two families with export-only code paths (AS-MLP's registered
# shift operator and the MoE's stable sort have no ONNX form: standard-operator spellings replace them)
EXPORTED = [("token", "strip"), ("channel", "mlp"), ("token", "asmlp"), ("token", "moe"), ("channel", "moe")]


def family_of(role: str, name: str) -> MixerFamily:
    return mixer_families(role)[name]


def assert_passes(result: contract.CheckResult) -> None:
    assert result.status is contract.Status.PASSED, f"{result.name}: {result.status.value}: {result.detail}"


# -- shape, determinism, tracing, gradients ---------------------------------------------------------------


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_defaults_resolve_at_a_reference_width(role, name):
    assert_passes(contract.check_defaults(family_of(role, name)))


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_output_shape_is_input_shape(role, name):
    assert_passes(contract.check_shape(family_of(role, name)))


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_deterministic_under_a_seed(role, name):
    assert_passes(contract.check_determinism(family_of(role, name)))


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_traces_with_every_operator_handled(role, name):
    assert_passes(contract.check_fvcore(family_of(role, name)))


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_gradients_reach_the_input_and_every_parameter(role, name):
    assert_passes(contract.check_gradients(family_of(role, name)))


def test_spatial_families_refuse_prefix_tokens():
    spatial = [family_of(role, name) for role, name in FAMILIES if family_of(role, name).spatial]
    assert spatial, "no spatial family is registered: this test checks nothing"
    for family in spatial:
        ctx = contract.contexts(family)[0]
        with pytest.raises(ArchError, match="class token"):
            family.resolve({}, MixerContext(ctx.dim, ctx.grid, 1), "contract")


# -- every declared parameter changes the model ------------------------------------------------------------


@pytest.mark.parametrize("role, name, param_name", PARAMS, ids=PARAM_IDS)
def test_every_declared_parameter_changes_the_model(role, name, param_name):
    assert_passes(contract.check_parameter(family_of(role, name), param_name))


# -- torch.compile and ONNX, on a few families -------------------------------------------------------------


@pytest.mark.parametrize("role, name", COMPILED, ids=[f"{r}:{n}" for r, n in COMPILED])
def test_torch_compile_matches_eager(role, name):
    result = contract.check_compile(family_of(role, name))
    if result.status is contract.Status.SKIPPED:
        pytest.skip(result.detail)
    assert_passes(result)


@pytest.mark.parametrize("role, name", EXPORTED, ids=[f"{r}:{n}" for r, n in EXPORTED])
def test_onnx_export_passes_the_checker(role, name):
    pytest.importorskip("onnx")
    assert_passes(contract.check_onnx(family_of(role, name)))
