"""AS-MLP: the ``asmlp`` token mixer, its ``mixnas::axial_shift`` operator and the ``asmlp_*`` named models.

The equivalence with the official ``AS_MLP`` (same logits from the same weights, same fvcore MACs) was
checked outside the repository (the official shift is a CuPy kernel); here the shift is checked against
the official pure-PyTorch reference ``torch_shift`` (pad, chunk, roll, crop), restated below.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import mixnas.complexity as cx
from mixnas.errors import ArchError
from mixnas.mixers.asmlp import axial_shift, axial_shift_traceable
from mixnas.network import build_model
from mixnas.registry import MixerContext, get_mixer, get_named_model


def official_torch_shift(x: torch.Tensor, shift_size: int, dim: int) -> torch.Tensor:
    """``models/shift_cuda.py: torch_shift`` of the official code, on NCHW (``dim`` 2: H, 3: W)."""
    _, _, h, w = x.shape
    pad = shift_size // 2
    x = F.pad(x, (pad, pad, pad, pad), "constant", 0)
    xs = torch.chunk(x, shift_size, 1)
    x = torch.cat([torch.roll(xc, s, dim) for xc, s in zip(xs, range(-pad, pad + 1))], 1)
    return torch.narrow(torch.narrow(x, 2, pad, h), 3, pad, w)


def reference_dilated_shift(x: torch.Tensor, shift_size: int, dim: int, dilation: int) -> torch.Tensor:
    """The formula, one channel at a time: group g of channel c moves (g - s//2) * dilation, zero-filled."""
    out = torch.zeros_like(x)
    c, size = x.shape[-1], x.shape[dim]
    width = -(-c // shift_size)
    for ch in range(c):
        move = (ch // width - shift_size // 2) * dilation
        for i in range(size):
            if 0 <= i - move < size:
                out.select(dim, i)[..., ch] = x.select(dim, i - move)[..., ch]
    return out


@pytest.mark.parametrize("channels, shift_size", [(96, 5), (10, 3), (7, 5), (12, 7), (5, 1)])
@pytest.mark.parametrize("axis", [2, 3])
def test_shift_equals_the_official_torch_shift(channels, shift_size, axis):
    x = torch.randn(2, channels, 6, 5)
    ours = axial_shift(x.permute(0, 2, 3, 1).contiguous(), axis - 1, shift_size, 1).permute(0, 3, 1, 2)
    assert torch.equal(ours, official_torch_shift(x, shift_size, axis))


@pytest.mark.parametrize("dilation", [2, 3])
def test_dilated_shift_follows_its_formula_and_fills_zeros(dilation):
    x = torch.randn(1, 9, 11, 7)  # (B, H, W, C): groups of 2 channels, the last one of 1
    for dim in (1, 2):
        out = axial_shift(x, dim, 5, dilation)
        assert torch.equal(out, reference_dilated_shift(x, 5, dim, dilation))
    # nothing wraps around: a shift by the whole grid leaves the outer groups empty
    out = axial_shift(x, 1, 5, 9)
    assert (out[..., :4] == 0).all() and (out[..., 6:] == 0).all() and torch.equal(out[..., 4:6], x[..., 4:6])


@pytest.mark.parametrize("shift_size, dilation", [(5, 1), (3, 2), (7, 1), (5, 3), (1, 1), (5, 9)])
def test_the_shift_in_standard_operators_for_onnx_is_the_same(shift_size, dilation):
    x = torch.randn(2, 9, 11, 13)  # (B, H, W, C): an uneven last channel group
    for dim in (1, 2):
        assert torch.equal(axial_shift_traceable(x, dim, shift_size, dilation),
                           axial_shift(x, dim, shift_size, dilation))


def test_gradient_is_the_opposite_shift():
    x = torch.randn(1, 5, 4, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: axial_shift(t, 1, 5, 2), (x,))
    assert torch.autograd.gradcheck(lambda t: axial_shift(t, 2, 3, 1), (x,))


def test_the_shift_is_one_operator_registered_as_free():
    ctx = MixerContext(32, (8, 8))
    family = get_mixer("token", "asmlp")
    module = family.build(family.resolve({}, ctx, "t"), ctx).eval()
    x = torch.randn(1, 64, 32)
    total, _ = cx.count_macs(module, (x,))
    linears = 4 * 64 * 32 * 32  # conv1, conv2_1, conv2_2, conv3
    norms = 2 * 5 * 64 * 32  # GroupNorm with an affine: fvcore's 5 per element
    assert total == linears + norms
    assert "mixnas::axial_shift" in cx.ZERO_COST_OPS


def test_without_the_registration_the_shift_is_reported_unhandled(monkeypatch):
    monkeypatch.setattr(cx, "ZERO_COST_OPS", cx.ZERO_COST_OPS - {"mixnas::axial_shift"})
    ctx = MixerContext(32, (8, 8))
    family = get_mixer("token", "asmlp")
    module = family.build(family.resolve({}, ctx, "t"), ctx).eval()
    with pytest.raises(cx.UnhandledOperatorError, match="mixnas::axial_shift"):
        cx.count_macs(module, (torch.randn(1, 64, 32),))


def test_branches_and_bias_change_the_projections():
    ctx = MixerContext(16, (4, 4))
    family = get_mixer("token", "asmlp")

    def n_params(**params):
        module = family.build(family.resolve(params, ctx, "t"), ctx)
        return sum(p.numel() for p in module.parameters())

    both = 4 * (16 * 16 + 16) + 2 * 2 * 16
    assert n_params() == both
    assert n_params(branches="horizontal") == n_params(branches="vertical") == both - (16 * 16 + 16)
    assert n_params(bias=False) == both - 4 * 16


@pytest.mark.parametrize("params, message", [
    ({"shift_size": 4}, "must be odd"),
    ({"shift_size": 19}, "channel groups cannot be made of width 16"),
])
def test_rules_name_the_parameter(params, message):
    with pytest.raises(ArchError, match=message) as err:
        get_mixer("token", "asmlp").resolve(params, MixerContext(16, (4, 4)), "stages[0].token_mixer")
    assert err.value.path == "stages[0].token_mixer.shift_size"


def test_asmlp_t_at_32x32_runs_with_shifts_past_the_small_grids():
    arch = get_named_model("asmlp_t").make(image_size=32, num_classes=10)
    assert [g for g in arch.grids()] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    net = build_model(arch).train()
    out = net(torch.randn(2, 3, 32, 32))
    F.cross_entropy(out, torch.arange(2)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
