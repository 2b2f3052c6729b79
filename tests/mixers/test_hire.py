"""Hire-MLP: the ``hire`` token mixer and the ``hire_mlp_*`` named models.

The equivalence with the official ``HireMLPNet`` (same logits from the same weights, same fvcore MACs) was
checked outside the repository; here the mixer is checked against the official ``HireMLP.forward``,
restated below in its own NCHW form with 1x1 convolutions, on the module's weights.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mixnas.errors import ArchError
from mixnas.mixers.hire import HireMixer
from mixnas.registry import MixerContext, get_mixer, get_named_model


def build(ctx: MixerContext, **params) -> HireMixer:
    family = get_mixer("token", "hire")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = family.build(family.resolve(params, ctx, "t"), ctx)
    for bn in (module.mlp_h.norm, module.mlp_w.norm):  # non-trivial eval statistics
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    return module.eval()


def conv(x, linear):
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


def official_forward(m: HireMixer, x: torch.Tensor, pixel: int, step: int) -> torch.Tensor:
    """``HireMLP.forward`` of the official code (step_pad_mode = pixel_pad_mode = 'c')."""
    b, c, h, w = x.shape
    pad_h, pad_w = (pixel - h % pixel) % pixel, (pixel - w % pixel) % pixel
    xh, xw = x.clone(), x.clone()
    if step:
        xh, xw = torch.roll(xh, step, -2), torch.roll(xw, step, -1)
    xh = F.pad(xh, (0, 0, 0, pad_h), mode="circular")
    xw = F.pad(xw, (0, pad_w, 0, 0), mode="circular")
    xh = xh.reshape(b, c, (h + pad_h) // pixel, pixel, w).permute(0, 1, 3, 2, 4).reshape(b, c * pixel, -1, w)
    xw = xw.reshape(b, c, h, (w + pad_w) // pixel, pixel).permute(0, 1, 4, 2, 3).reshape(b, c * pixel, h, -1)

    def region_mlp(y, mlp):
        return conv(F.relu(F.batch_norm(conv(y, mlp.fc1), mlp.norm.running_mean, mlp.norm.running_var,
                                        mlp.norm.weight, mlp.norm.bias)), mlp.fc2)

    xh, xw = region_mlp(xh, m.mlp_h), region_mlp(xw, m.mlp_w)
    xh = xh.reshape(b, c, pixel, (h + pad_h) // pixel, w).permute(0, 1, 3, 2, 4).reshape(b, c, h + pad_h, w)
    xw = xw.reshape(b, c, pixel, h, (w + pad_w) // pixel).permute(0, 1, 3, 4, 2).reshape(b, c, h, w + pad_w)
    xh, xw = torch.narrow(xh, 2, 0, h), torch.narrow(xw, 3, 0, w)
    if step:
        xh, xw = torch.roll(xh, -step, -2), torch.roll(xw, -step, -1)
    xc = conv(x, m.mlp_c)
    a = (xh + xw + xc).flatten(2).mean(2)[:, :, None, None]
    a = conv(F.gelu(conv(a, m.reweight_fc1)), m.reweight_fc2)
    a = a.reshape(b, c, 3).permute(2, 0, 1).softmax(dim=0)[..., None, None]
    return conv(xh * a[0] + xw * a[1] + xc * a[2], m.proj)


@pytest.mark.parametrize("grid, region, block, step, stride", [
    ((8, 8), 4, 1, 2, 2),   # official stage 1: shifted block
    ((7, 7), 3, 2, 1, 3),   # circular padding and a shift of 2
    ((5, 6), 2, 0, 1, 2),   # unshifted block, non-square grid
    ((2, 2), 3, 1, 1, 2),   # a 2x2 grid (stage 3 at 32x32) padded to 3
])
def test_mixer_equals_the_official_forward(grid, region, block, step, stride):
    ctx = MixerContext(8, grid, block_index=block)
    m = build(ctx, region_size=region, shift_step=step, shift_stride=stride)
    x = torch.randn(2, 8, *grid)
    ours = m(x.permute(0, 2, 3, 1).reshape(2, -1, 8))
    ref = official_forward(m, x, region, (block % stride) * step)
    torch.testing.assert_close(ours, ref.permute(0, 2, 3, 1).reshape(2, -1, 8), rtol=1e-5, atol=1e-5)


def test_padding_wider_than_the_grid_repeats_it():
    """Region 3 on a 1x1 grid (official F.pad refuses): the one position, repeated, fills the region."""
    m = build(MixerContext(8, (1, 1), block_index=1), region_size=3)
    x = torch.randn(2, 1, 8)
    assert m(x).shape == x.shape
    img = x.view(2, 1, 1, 8)
    folded = x.view(2, 1, 1, 8, 1).expand(2, 1, 1, 8, 3).reshape(2, 1, 1, 24)  # channel c*p + i
    expected = m.mlp_h(folded).view(2, 1, 1, 8, 3)[..., 0]
    torch.testing.assert_close(m._along(m.mlp_h, img, 1, m.pad_h), expected)


def test_shift_alternates_over_the_blocks_of_a_stage():
    steps = [build(MixerContext(8, (6, 6), block_index=b), region_size=3, shift_step=1, shift_stride=3).step
             for b in range(6)]
    assert steps == [0, 1, 2, 0, 1, 2]


def test_a_shift_by_whole_regions_is_refused_where_regions_tile_the_grid():
    family = get_mixer("token", "hire")
    with pytest.raises(ArchError, match="moves whole regions") as err:
        family.resolve({"region_size": 2, "shift_step": 2}, MixerContext(8, (8, 8)), "stages[0].token_mixer")
    assert err.value.path == "stages[0].token_mixer.shift_step"
    family.resolve({"region_size": 3, "shift_step": 3}, MixerContext(8, (8, 8)), "t")  # padded: not a no-op


def test_branch_switches_change_the_parameter_count():
    ctx = MixerContext(16, (6, 6))

    def n_params(**params):
        return sum(p.numel() for p in build(ctx, **params).parameters())

    assert n_params() - n_params(channel_branch=False) == 16 * 16 + 16 + 16 * (4 + 1)  # mlp_c, 3rd reweight
    assert n_params() - n_params(reweight=False) == (16 * 4 + 4) + (4 * 48 + 48)


def test_hire_mlp_t_at_32x32_has_the_official_grids():
    arch = get_named_model("hire_mlp_t").make(image_size=32, num_classes=10)
    assert arch.grids() == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert [(s.token_mixer["region_size"], s.token_mixer["shift_step"], s.token_mixer["shift_stride"])
            for s in arch.stages] == [(4, 2, 2), (3, 2, 2), (3, 1, 3), (2, 1, 2)]
