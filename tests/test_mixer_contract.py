"""The mixer contract, checked for every registered family.

The tests are parametrised over :func:`mixnas.registry.mixer_families`, so a family registered later is
covered with no edit here. For each family, in a small context that its defaults accept:

* ``forward(x)`` keeps the shape ``(B, N, C)``, with a class token too unless the family is spatial;
* building twice under one seed gives the same module;
* fvcore traces it with every operator handled (:func:`mixnas.complexity.count_macs`);
* every declared :class:`~mixnas.registry.Param` changes the built module (in one of the first blocks of a
  stage: Hire-MLP's shift parameters act only in the blocks that shift);
* gradients reach the input and every parameter.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from mixnas.errors import ArchError
from mixnas.registry import ROLES, MixerContext, MixerFamily, Param, mixer_families

GRID = (8, 8)
CANDIDATE_DIMS = (64, 80, 96, 48, 128, 32, 160, 192, 256)  # the first whose defaults resolve is used
BATCH = 2

FAMILIES = [(role, name) for role in ROLES for name in sorted(mixer_families(role))]
FAMILY_IDS = [f"{role}:{name}" for role, name in FAMILIES]
PARAMS = [(role, name, p.name) for role, name in FAMILIES for p in mixer_families(role)[name].params]
PARAM_IDS = [f"{role}:{name}.{param}" for role, name, param in PARAMS]


def family_of(role: str, name: str) -> MixerFamily:
    return mixer_families(role)[name]


def valid_contexts(family: MixerFamily) -> list[list[MixerContext]]:
    """For each candidate width whose defaults resolve: the context without prefix tokens and, for a
    non-spatial family, the one with a class token."""
    found, errors = [], []
    for dim in CANDIDATE_DIMS:
        ctxs = [MixerContext(dim, GRID, 0)] + ([] if family.spatial else [MixerContext(dim, GRID, 1)])
        try:
            for ctx in ctxs:
                family.resolve({}, ctx, "contract")
        except ArchError as err:
            errors.append(f"dim {dim}: {err}")
            continue
        found.append(ctxs)
    if not found:
        pytest.fail(f"{family.role} mixer {family.name!r}: no width in {CANDIDATE_DIMS} on a {GRID} grid "
                    f"accepts the defaults:\n" + "\n".join(errors))
    return found


def contexts(family: MixerFamily) -> list[MixerContext]:
    return valid_contexts(family)[0]


def build(family: MixerFamily, params: dict, ctx: MixerContext, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(family.resolve(params, ctx, "contract"), ctx)


def tokens(ctx: MixerContext, seed: int = 0) -> torch.Tensor:
    return torch.randn(BATCH, ctx.num_tokens, ctx.dim, generator=torch.Generator().manual_seed(seed))


def run(module: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    module.train(train)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # same dropout / stochastic choices for both modules compared
        return module(x)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- shape, determinism, tracing, gradients ---------------------------------------------------------------


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_output_shape_is_input_shape(role, name):
    family = family_of(role, name)
    for ctx in contexts(family):
        x = tokens(ctx)
        for train in (False, True):
            out = run(build(family, {}, ctx), x, train)
            assert out.shape == x.shape, f"{ctx}: {tuple(out.shape)} != {tuple(x.shape)}"
            assert out.dtype == x.dtype
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_deterministic_under_a_seed(role, name):
    family = family_of(role, name)
    for ctx in contexts(family):
        a, b = build(family, {}, ctx, seed=3), build(family, {}, ctx, seed=3)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        x = tokens(ctx)
        assert torch.equal(run(a, x, False), run(b, x, False))


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_traces_with_every_operator_handled(role, name):
    from mixnas.complexity import count_macs  # raises UnhandledOperatorError for an unknown operator

    family = family_of(role, name)
    for ctx in contexts(family):
        module = build(family, {}, ctx).eval()
        total, by_module = count_macs(module, (tokens(ctx),))
        assert isinstance(total, int) and total >= 0
        assert isinstance(by_module, dict)


@pytest.mark.parametrize("role, name", FAMILIES, ids=FAMILY_IDS)
def test_gradients_reach_the_input_and_every_parameter(role, name):
    family = family_of(role, name)
    for ctx in contexts(family):
        module = build(family, {}, ctx).train()
        x = tokens(ctx).requires_grad_(True)
        out = module(x)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        (out * weights).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient reaches {missing}"
        assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_spatial_families_refuse_prefix_tokens():
    for role, name in FAMILIES:
        family = family_of(role, name)
        if family.spatial:
            ctx = contexts(family)[0]
            with pytest.raises(ArchError, match="class token"):
                family.resolve({}, MixerContext(ctx.dim, ctx.grid, 1), "contract")


# -- every declared parameter changes the model ------------------------------------------------------------


def other_values(param: Param, default):
    """Non-default values to try, most natural first."""
    if param.kind is bool:
        return [not default]
    if param.choices is not None:
        return [c for c in param.choices if c != default]
    if param.kind is int:
        steps = [default * 2, default // 2, default + 2, default - 2, default + 1, default - 1, default * 3,
                 default + 4, default - 4, default * 4, default + 8, default - 8, 1, 2, 4, 8]
    elif param.kind is float:
        steps = [default * 2, default / 2, default + 0.5, default - 0.5, default + 0.1, default - 0.1,
                 0.0, 0.5, 1.0, 2.0]
    else:
        pytest.fail(f"parameter {param.name!r} of kind {param.kind.__name__} declares no choices: "
                    "the contract cannot pick another value")
    out = []
    for v in steps:
        if v != default and v not in out:
            out.append(v)
    return out


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / (a.norm() + b.norm() + 1e-30))


@pytest.mark.parametrize("role, name, param_name", PARAMS, ids=PARAM_IDS)
def test_every_declared_parameter_changes_the_model(role, name, param_name):
    family = family_of(role, name)
    param = family.param(param_name)
    tried = []
    for ctxs in valid_contexts(family):
        ctx = ctxs[-1]  # with a class token where the family takes one
        default = family.resolve({}, ctx, "contract")[param_name]
        for value in other_values(param, default):
            try:
                family.resolve({param_name: value}, ctx, "contract")
            except ArchError:
                tried.append(f"dim {ctx.dim}: {value!r}")
                continue
            diffs = []
            for block in range(4):  # a parameter may act only in some blocks of a stage
                at = replace(ctx, block_index=block)
                base, changed = build(family, {}, at), build(family, {param_name: value}, at)
                if n_params(base) != n_params(changed):
                    return
                x = tokens(at)
                diffs += [relative_difference(run(base, x, train), run(changed, x, train)) for train in (False, True)]
            assert max(diffs) > 1e-4, (
                f"{param_name}={value!r} instead of {default!r} builds a module with the same parameter count "
                f"and the same output (relative differences eval/train {diffs}): a declared parameter must "
                "change the model")
            return
    pytest.fail(f"no valid non-default value of {param_name!r} found; tried {', '.join(tried)}")
