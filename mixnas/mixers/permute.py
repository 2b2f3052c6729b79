"""Vision Permutator's token mixer: the weighted Permute-MLP.

Paper: Hou et al., "Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition", IEEE
TPAMI 2022 (arXiv 2106.12368). Official code: github.com/Andrew-Qibin/VisionPermutator, ``models/vip.py``
(``WeightedPermuteMLP``). With ``segment_dim`` equal to the grid side (the official validity rule, below)
this module has the official parameters one for one and computes the same function.

On an ``H x W`` grid of width ``C``, the channels are cut into ``segment_dim`` segments of
``S = C / segment_dim`` channels (channel ``c = g * S + s``)::

    h = height branch: for every (segment g, column w), the H x S block of (row, channel-in-segment)
        values is mixed by one Linear(H*S, H*S)                        [official mlp_h, no bias]
    w = width branch: the same per (row h, segment g) with Linear(W*S, W*S)   [official mlp_w, no bias]
    c = Linear(C, C) (x)                                               [official mlp_c, no bias]
    a = softmax over the 3 branches of Mlp(C -> C/4 -> 3C)(mean over the grid of h + w + c)
    out = Linear(C, C) (a_h * h + a_w * w + a_c * c)                   [official proj, with bias]

The official code sizes ``mlp_h`` and ``mlp_w`` as ``Linear(C, C)``, which only fits when ``H * S = C`` and
``W * S = C``, i.e. its validity rule ``H * (C / segment_dim) = C`` (``segment_dim`` equal to the grid side;
every published model satisfies it: 32 segments on the 32x32 grid of the /7 models, 16 on the 16x16 grid).
Deviation, deliberate: this module sizes them ``Linear(H*S, H*S)`` and ``Linear(W*S, W*S)``, which is the
official layer whenever the rule holds and extends the same height / width permutation to any
``segment_dim`` dividing ``C`` (otherwise a searchable ``segment_dim`` could only ever take one value: the
grid side). Only ``C % segment_dim == 0`` is required; :func:`official_shape` tells whether a context
satisfies the official rule, and the named models are checked to do so.

Other knobs: ``reweight: false`` sums the three branches with equal weights 1 (the paper's "Permute-MLP
without weighting" ablation; drops the re-weighting MLP), ``qkv_bias`` puts biases on the three branch
projections (official: false, the keyword ``qkv_bias``). Deviations that change neither function nor
parameter count: tokens stay ``(B, N, C)`` (viewed as ``(B, H, W, C)``); the re-weighting softmax keeps the
official ``(C, 3)`` layout of the second re-weighting layer's outputs, so official weights load unchanged.
Initialisation is the backbone's (truncated normal std 0.02, zero bias), as official.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def official_shape(segment_dim: int, ctx: MixerContext) -> bool:
    """The official rule ``H * (C / segment_dim) = C`` (and the same for ``W``)."""
    s = ctx.dim // segment_dim
    return ctx.dim % segment_dim == 0 and ctx.grid[0] * s == ctx.dim and ctx.grid[1] * s == ctx.dim


def _segments_divide(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if params["segment_dim"] > ctx.dim or ctx.dim % params["segment_dim"]:
        return [("segment_dim", f"width {ctx.dim} is not divisible by segment_dim={params['segment_dim']}")]
    return []


def _default_segments(ctx: MixerContext) -> int:
    side = ctx.grid[0]
    return side if ctx.dim % side == 0 else 1


@register_mixer("token", "permute", params=[
    Param("segment_dim", int, _default_segments, min=1,
          doc="channel segments; each mixes a column (row) with S = C / segment_dim channels. The official "
              "rule H * S = C holds at the default (the grid side)"),
    Param("reweight", bool, True, doc="learned softmax re-weighting of the height / width / channel branches "
                                      "(official); false: plain sum"),
    Param("qkv_bias", bool, False, doc="biases on the three branch projections (official: false)"),
], rules=[_segments_divide], spatial=True)
class WeightedPermuteMLP(nn.Module):
    """ViP Permute-MLP: height, width and channel projections, re-weighted, then fused."""

    def __init__(self, ctx: MixerContext, segment_dim: int, reweight: bool, qkv_bias: bool):
        super().__init__()
        c = ctx.dim
        self.grid, self.segments = ctx.grid, segment_dim
        s = c // segment_dim
        self.mlp_c = nn.Linear(c, c, bias=qkv_bias)
        self.mlp_h = nn.Linear(ctx.grid[0] * s, ctx.grid[0] * s, bias=qkv_bias)
        self.mlp_w = nn.Linear(ctx.grid[1] * s, ctx.grid[1] * s, bias=qkv_bias)
        if reweight:
            self.reweight_fc1 = nn.Linear(c, c // 4)
            self.reweight_fc2 = nn.Linear(c // 4, 3 * c)
        else:
            self.reweight_fc1 = self.reweight_fc2 = None
        self.proj = nn.Linear(c, c)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        (hh, ww), g = self.grid, self.segments
        s = c // g
        x5 = x.view(b, hh, ww, g, s)
        # height branch: (B, g, W, H*S) rows, mixed along H*S
        h = self.mlp_h(x5.permute(0, 3, 2, 1, 4).reshape(b, g, ww, hh * s))
        h = h.view(b, g, ww, hh, s).permute(0, 3, 2, 1, 4).reshape(b, n, c)
        # width branch: (B, H, g, W*S) rows, mixed along W*S
        w = self.mlp_w(x5.permute(0, 1, 3, 2, 4).reshape(b, hh, g, ww * s))
        w = w.view(b, hh, g, ww, s).permute(0, 1, 3, 2, 4).reshape(b, n, c)
        cc = self.mlp_c(x)
        if self.reweight_fc1 is None:
            return self.proj(h + w + cc)
        a = self.reweight_fc2(F.gelu(self.reweight_fc1((h + w + cc).mean(dim=1))))
        a = a.view(b, c, 3).permute(2, 0, 1).softmax(dim=0).unsqueeze(2)  # (3, B, 1, C)
        return self.proj(torch.addcmul(torch.addcmul(cc * a[2], h, a[0]), w, a[1]))
