"""sMLPNet: the ``smlp`` token mixer and the ``smlpnet_*`` named models.

The equivalence with the official ``sMLPNet`` (same logits from the same weights, same fvcore MACs) was
checked outside the repository (it needs einops and timm); here the mixer is checked against the official
``DWConvBlock`` + ``sMLPBlock`` forward, restated below in NCHW on the module's weights.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mixnas.errors import ArchError
from mixnas.mixers.smlp import SparseMLPMixer
from mixnas.registry import MixerContext, get_mixer, get_named_model


def build(ctx: MixerContext, **params) -> SparseMLPMixer:
    family = get_mixer("token", "smlp")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = family.build(family.resolve(params, ctx, "t"), ctx)
    for bn in (module.dw_bn, module.bn):
        if bn is not None:
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    return module.eval()


def bn_gelu(x, bn):
    return F.gelu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))


def official_forward(m: SparseMLPMixer, x: torch.Tensor) -> torch.Tensor:
    """``DWConvBlock`` then ``sMLPBlock`` of the official code (NCHW, square grid)."""
    c = x.shape[1]
    x = F.conv2d(bn_gelu(x, m.dw_bn), m.dw_conv.weight, None, 1, 1, 1, c)
    x = bn_gelu(x, m.bn)
    size = x.shape[2]
    x_h = F.conv2d(x.permute(0, 3, 1, 2), m.proj_h.weight.view(size, size, 1, 1), m.proj_h.bias).permute(0, 2, 3, 1)
    x_w = F.conv2d(x.permute(0, 2, 1, 3), m.proh_w.weight.view(size, size, 1, 1), m.proh_w.bias).permute(0, 2, 1, 3)
    return F.conv2d(torch.cat([x, x_h, x_w], 1), m.fuse.weight[:, :, None, None])


@pytest.mark.parametrize("side", [7, 4, 1])
def test_mixer_equals_the_official_forward(side):
    m = build(MixerContext(12, (side, side)))
    x = torch.randn(2, 12, side, side)
    ours = m(x.permute(0, 2, 3, 1).reshape(2, -1, 12))
    ref = official_forward(m, x).permute(0, 2, 3, 1).reshape(2, -1, 12)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_axial_maps_are_shared_across_channels_and_follow_the_official_names():
    m = build(MixerContext(32, (4, 6)))
    assert m.proj_h.weight.shape == (6, 6) and m.proh_w.weight.shape == (4, 4)  # along W, along H
    n_token = sum(p.numel() for name, p in m.named_parameters() if name.startswith("pro"))
    assert n_token == 6 * 6 + 6 + 4 * 4 + 4  # independent of the width
    assert m(torch.randn(1, 24, 32)).shape == (1, 24, 32)


def test_sum_fusion_and_no_dwconv():
    ctx = MixerContext(16, (4, 4))
    full = build(ctx)
    lean = build(ctx, fusion="sum", dw_kernel=0)
    n = sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in lean.parameters())
    assert n == 3 * 16 * 16 + 2 * 16 + 9 * 16  # fuse, the dwconv unit's BatchNorm and 3x3 kernel
    x = torch.randn(2, 16, 16)
    y = F.gelu(F.batch_norm(x.reshape(-1, 16), lean.bn.running_mean, lean.bn.running_var, lean.bn.weight,
                            lean.bn.bias)).view(2, 4, 4, 16)
    along_w = torch.einsum("vw,bhwc->bhvc", lean.proj_h.weight, y) + lean.proj_h.bias[:, None]
    along_h = torch.einsum("gh,bhwc->bgwc", lean.proh_w.weight, y) + lean.proh_w.bias[:, None, None]
    torch.testing.assert_close(lean(x), (y + along_w + along_h).view(2, 16, 16), rtol=1e-5, atol=1e-5)


def test_even_kernel_is_refused():
    with pytest.raises(ArchError, match="must be odd") as err:
        get_mixer("token", "smlp").resolve({"dw_kernel": 4}, MixerContext(16, (4, 4)), "stages[1].token_mixer")
    assert err.value.path == "stages[1].token_mixer.dw_kernel"


def test_smlpnet_blocks_have_no_norm_before_the_token_mixer():
    from mixnas.network import build_model

    arch = get_named_model("smlpnet_t").make(image_size=32, num_classes=10)
    with torch.device("meta"):
        net = build_model(arch)
    block = net.stages[0].blocks[0]
    assert isinstance(block.norm1, torch.nn.Identity) and isinstance(block.norm2, torch.nn.LayerNorm)
