"""sMLPNet's token mixer: a depthwise convolution, then sparse axial MLPs shared across channels, fused.

Paper: Tang, Zhao, Wu, Zhou, Li, Zhang and Wang, "Sparse MLP for Image Recognition: Is Self-Attention Really
Necessary?", AAAI 2022. Official code: github.com/microsoft/SPACH, ``models/smlp.py`` (``DWConvBlock``,
``sMLPBlock``). With default parameters this module has the official parameters one for one and computes
the same function.

On a ``C``-channel ``H x W`` grid::

    x = dwconv(GELU(BN(x)))                 depthwise k x k convolution without bias  [dw_kernel; 0: none]
    x = GELU(BN(x))
    x_w[h, w'] = b_w[w'] + sum_w A_w[w', w] x[h, w]      one W x W map for every row and every channel
    x_h[h', w] = b_h[h'] + sum_h A_h[h', h] x[h, w]      one H x H map for every column and channel
    out = fuse([x, x_w, x_h])               concat: 1x1 conv 3C -> C without bias (official)
        = x + x_w + x_h                     sum: the paper's cheaper fusion ablation

The two axial maps are sparse (each token reads its row, or its column) and shared by all channels: a layer
has ``W^2 + H^2`` weights whatever its width. Both read the same input (parallel, as in the paper).

Deviations from the official code, none of which changes the function or the parameter count with
default knobs:

* tokens stay channels-last; the axial maps run as matrix products on the token grid (the official
  1x1 convolutions over a permuted tensor, same MACs) and the fusion as ``nn.Linear``;
* the official module names are kept, with their quirk: ``proj_h`` (an ``H x H`` convolution applied to
  the ``(B, W, C, H)`` permutation) mixes along the width, ``proh_w`` along the height. The official code
  asserts a square grid, where the two sizes agree; here a non-square grid is allowed (``proj_h`` is then
  ``W x W`` and ``proh_w`` ``H x H``);
* the depthwise convolution skips taps that only ever read padding (:class:`mixnas.mixers._conv.
  DepthwiseConv2d`, exact), and ``dw_kernel: 0`` drops the BN-GELU-dwconv unit (an ablation);
* initialisation is PyTorch's default, as in the official code (which has no initialiser).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.layers import image_to_tokens, tokens_to_image
from mixnas.mixers._conv import DepthwiseConv2d
from mixnas.registry import MixerContext, Param, register_mixer

FUSIONS = ("concat", "sum")


def _odd_kernel(params, ctx: MixerContext) -> list[tuple[str, str]]:
    k = params["dw_kernel"]
    if k and k % 2 == 0:
        return [("dw_kernel", f"must be odd so the convolution is centred (or 0 for none); found {k}")]
    return []


class AxialMap(nn.Module):
    """``size x size`` weights and a bias of ``size``: a 1x1 convolution over a permuted axis (official)."""

    def __init__(self, size: int):
        super().__init__()
        conv = nn.Conv2d(size, size, 1)  # the official layer, for its default initialisation
        self.weight = nn.Parameter(conv.weight.detach().view(size, size).clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(..., size, M)`` -> ``(..., size, M)``, mixing the ``size`` axis."""
        return torch.matmul(self.weight, x) + self.bias[:, None]


@register_mixer("token", "smlp", params=[
    Param("dw_kernel", int, 3, min=0, doc="kernel of the depthwise convolution before the sparse MLP "
                                          "(official 3; 0: no BN-GELU-dwconv unit)"),
    Param("fusion", str, "concat", choices=FUSIONS,
          doc="concat: 1x1 conv of [x, x_w, x_h] (official); sum: x + x_w + x_h"),
], rules=[_odd_kernel], spatial=True)
class SparseMLPMixer(nn.Module):
    """sMLP token mixing: BN-GELU-dwconv, then row and column MLPs shared over channels, fused with x."""

    def __init__(self, ctx: MixerContext, dw_kernel: int, fusion: str):
        super().__init__()
        c, (h, w) = ctx.dim, ctx.grid
        self.grid = ctx.grid
        if dw_kernel:
            self.dw_bn = nn.BatchNorm2d(c)
            self.dw_conv = DepthwiseConv2d(c, dw_kernel, ctx.grid)
        else:
            self.dw_bn = self.dw_conv = None
        self.bn = nn.BatchNorm2d(c)
        self.proj_h = AxialMap(w)  # official name; mixes along the width
        self.proh_w = AxialMap(h)  # official name (sic); mixes along the height
        if fusion == "concat":
            self.fuse = nn.Linear(3 * c, c, bias=False)
            self.fuse._mixnas_custom_init = True
        else:
            self.fuse = None

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        (h, w) = self.grid
        if self.dw_conv is not None:
            x = image_to_tokens(self.dw_conv(F.gelu(self.dw_bn(tokens_to_image(x, self.grid)))))
        x = image_to_tokens(F.gelu(self.bn(tokens_to_image(x, self.grid))))
        rows = x.view(b, h, w, c)
        along_w = self.proj_h(rows)  # (B, H, W, C): W x W map on the W axis of each row
        along_h = self.proh_w(x.view(b, h, w * c)).view(b, h, w, c)
        if self.fuse is None:
            return x + along_w.reshape(b, n, c) + along_h.reshape(b, n, c)
        return self.fuse(torch.cat([x, along_w.reshape(b, n, c), along_h.reshape(b, n, c)], -1))
