"""Hire-MLP's token mixer: inner-region rearrangement, cross-region shift, channel branch, split attention.

Paper: Guo, Tang, Han, Chen, Wu, Xu, Xu and Wang, "Hire-MLP: Vision MLP via Hierarchical Rearrangement",
CVPR 2022. Official code: github.com/ggjy/Hire-Wave-MLP.pytorch, ``mlp_based/hire_mlp.py`` (``HireMLP``,
``basic_blocks``). With default pad modes (the official ``'c'``) this module has the official parameters one
for one (1x1 convolutions held as ``nn.Linear``) and computes the same function.

On a ``C``-channel ``H x W`` grid, with ``p = region_size`` and the block's shift ``s``::

    h = roll(x, s, along H)                      cross-region shift (official step_pad_mode 'c')
    h = pad rows circularly to a multiple of p, fold each region of p rows into channels (C*p),
        MLP C*p -> C/2 (no bias) -> BN -> ReLU -> C*p (bias), unfold, crop, roll back by -s
    w = the same along W
    c = mlp_c(x)                                 channel branch: 1x1 conv with bias
    a = softmax over the 3 paths of reweight(mean_HW(h + w + c))     split attention: C -> C/4 -> 3C
    out = proj(a_h * h + a_w * w + a_c * c)

The shift alternates over the blocks of a stage as in the official ``basic_blocks``: block ``b`` (its
``block_index``) shifts by ``s = (b % shift_stride) * shift_step``, so with the defaults the blocks alternate
between no shift and a shift of one token.

Knobs: ``region_size`` (the paper's h = w of the inner-region rearrangement, per stage: 4, 3, 3, 2 in the
named models), ``shift_step`` and ``shift_stride`` (the official ``step_dilation`` and ``step_stride``; a
step that is a multiple of the region size only permutes whole regions when they tile the grid, a
no-op, and is then refused),
``channel_branch`` (drop ``mlp_c``; the reweighting then blends two paths) and ``reweight`` (the split
attention; without it the paths are summed).

Deviations from the official code, none of which changes the function or the parameter count with
default knobs:

* tokens stay channels-last; the 1x1 convolutions run as ``nn.Linear`` (same channel order in the folded
  ``C*p`` regions, so the official weights load after a reshape) and BatchNorm as ``BatchNorm1d`` on the
  flattened positions;
* circular padding is a gather of row (column) indices modulo the grid size, equal to the official
  ``F.pad(mode='circular')`` wherever that works, and also defined when the padding exceeds the grid
  (``region_size`` 3 on a 1x1 grid), where PyTorch's circular padding refuses;
* the official zero / replicate pad modes (``step_pad_mode='0'``, ``pixel_pad_mode``), unused by its
  models, are not offered, nor its unused ``attn_drop`` argument and dropout layers;
* initialisation as the official ``cls_init_weights`` for these layers: the backbone gives every
  ``nn.Linear`` a truncated normal (std 0.02) and zero bias; BatchNorm starts at 1 and 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def _rows_index(size: int, region: int) -> Tensor | None:
    """Indices that pad ``size`` positions circularly to a multiple of ``region`` (None: no padding)."""
    padded = -(-size // region) * region
    return None if padded == size else torch.arange(padded) % size


def _shift_moves_tokens_across_regions(params, ctx: MixerContext) -> list[tuple[str, str]]:
    step, region = params["shift_step"], params["region_size"]
    if step and step % region == 0 and not (ctx.grid[0] % region or ctx.grid[1] % region):
        return [("shift_step", f"a shift by {step} moves whole regions of {region} and changes nothing (the "
                               f"region MLPs are shared); use 0 for no shift or a step that is not a multiple "
                               f"of region_size {region}")]
    return []


class RegionMLP(nn.Module):
    """The inner-region MLP of one axis: ``C*p -> C/2`` (no bias), BatchNorm, ReLU, ``C/2 -> C*p``."""

    def __init__(self, dim: int, region: int):
        super().__init__()
        hidden = max(1, dim // 2)
        self.fc1 = nn.Linear(dim * region, hidden, bias=False)
        self.norm = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, dim * region)

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc1(x)
        y = F.relu(self.norm(y.reshape(-1, y.shape[-1])).view(y.shape))
        return self.fc2(y)


@register_mixer("token", "hire", params=[
    Param("region_size", int, 3, min=1,
          doc="rows (columns) folded into channels by the inner-region rearrangement (official 4, 3, 3, 2 "
              "over the four stages; by default 3, that of the two middle stages, which hold most blocks)"),
    Param("shift_step", int, 1, min=0,
          doc="tokens the cross-region shift moves per step (official step_dilation: 2, 2, 1, 1 by stage)"),
    Param("shift_stride", int, 2, min=1,
          doc="block b of a stage shifts by (b % shift_stride) * shift_step (official step_stride: 2, 2, 3, 2)"),
    Param("channel_branch", bool, True, doc="the channel-mixing path mlp_c beside the two spatial ones"),
    Param("reweight", bool, True, doc="split-attention re-weighting of the paths (otherwise they are summed)"),
], rules=[_shift_moves_tokens_across_regions], spatial=True)
class HireMixer(nn.Module):
    """Hire-MLP token mixing: region MLPs along H and W with a cross-region shift, channel branch, reweighting."""

    def __init__(self, ctx: MixerContext, region_size: int, shift_step: int, shift_stride: int,
                 channel_branch: bool, reweight: bool):
        super().__init__()
        c, (h, w) = ctx.dim, ctx.grid
        self.grid, self.region = ctx.grid, region_size
        self.step = (ctx.block_index % shift_stride) * shift_step
        self.mlp_h = RegionMLP(c, region_size)
        self.mlp_w = RegionMLP(c, region_size)
        self.mlp_c = nn.Linear(c, c) if channel_branch else None
        paths = 3 if channel_branch else 2
        self.reweight_fc1 = nn.Linear(c, max(1, c // 4)) if reweight else None
        self.reweight_fc2 = nn.Linear(max(1, c // 4), paths * c) if reweight else None
        self.proj = nn.Linear(c, c)
        for name, index in (("pad_h", _rows_index(h, region_size)), ("pad_w", _rows_index(w, region_size))):
            self.register_buffer(name, index, persistent=False)

    def _along(self, mlp: RegionMLP, img: Tensor, axis: int, pad: Tensor | None) -> Tensor:
        """Shift, fold regions of ``p`` positions along ``axis`` (1: H, 2: W) into channels, MLP, undo."""
        b, h, w, c = img.shape
        p, size = self.region, img.shape[axis]
        if self.step:
            img = torch.roll(img, self.step, axis)
        if pad is not None:
            img = img.index_select(axis, pad)
        n = img.shape[axis] // p
        if axis == 1:
            y = img.reshape(b, n, p, w, c).permute(0, 1, 3, 4, 2).reshape(b, n, w, c * p)
            y = mlp(y).view(b, n, w, c, p).permute(0, 1, 4, 2, 3).reshape(b, n * p, w, c)
        else:
            y = img.reshape(b, h, n, p, c).permute(0, 1, 2, 4, 3).reshape(b, h, n, c * p)
            y = mlp(y).view(b, h, n, c, p).permute(0, 1, 2, 4, 3).reshape(b, h, n * p, c)
        if pad is not None:
            y = y.narrow(axis, 0, size)
        if self.step:
            y = torch.roll(y, -self.step, axis)
        return y

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        img = x.view(b, self.grid[0], self.grid[1], c)
        paths = [self._along(self.mlp_h, img, 1, self.pad_h).reshape(b, n, c),
                 self._along(self.mlp_w, img, 2, self.pad_w).reshape(b, n, c)]
        if self.mlp_c is not None:
            paths.append(self.mlp_c(x))
        if self.reweight_fc1 is None:
            return self.proj(sum(paths))
        pooled = sum(paths).mean(1)
        att = self.reweight_fc2(F.gelu(self.reweight_fc1(pooled))).view(b, c, len(paths))
        att = att.permute(2, 0, 1).softmax(0)[:, :, None, :]  # (paths, B, 1, C)
        out = paths[0] * att[0]
        for path, weight in zip(paths[1:], att[1:]):
            out = torch.addcmul(out, path, weight)
        return self.proj(out)

    def extra_repr(self) -> str:
        return f"region_size={self.region}, shift={self.step}"
