"""Strip-MLP's token mixer: depthwise conv unit, then the Strip Mixing Block (CGSMM + LSMM).

Paper: Cao et al., "Strip-MLP: Efficient Token Interaction for Vision MLP", ICCV 2023.
Official code: github.com/Med-Process/Strip_MLP, ``models/strip_mlp.py`` (``TokenMixing``,
``DepthWise_Conv``, ``StripMLP_Block``, ``RelativePosition``). With default parameters this module has the
official parameters one for one (1x1 convolutions held as ``nn.Linear``) and computes the same function.

On a ``C``-channel, ``H x W`` grid (``H == W``, as the official code asserts)::

    x = DWSC(x)       = depthwise 3x3 conv (no bias) of GELU(BN(x))                  [dwsc]
    x = MLP(x)        = GELU(BN(1x1 conv with bias (x)))                              [input_mlp]
    x1, x2 = x[:C//2], x[C//2:]                                                       [branches]
    y = fuse(concat(CGSMM(x1), LSMM(x2)))                                             (1x1 conv, no bias)

CGSMM (Cascade Group Strip Mixing Module) on ``C'`` channels, split into ``P = patch_groups`` patches of
``G = C'/P`` channels (channel ``c = p*G + g``). A *strip pass along rows* maps, for each patch channel
``g`` (weights shared by the ``P`` patches, i.e. by channels ``g, G+g, 2G+g, ...``)::

    out[h, w'] = b[g, w'] + sum_{t, w} A[g, w', w, t] * in[h + t - k//2, w]      (zero outside the grid)

i.e. a full-width MLP along each row that also reads the ``k = strip_width`` neighbouring rows (the
official ``proj_h``, a grouped ``(1, k)`` convolution over ``(G*W, P, H)``). The pass along columns
(``proj_w``) is the same with rows and columns swapped. With the relative-position tables
``pos_h[h, w] = T_h[w - h + H]`` and ``pos_w[h, w] = T_w[w - h + W]`` (official ``RelativePosition``: tables
of ``2H+1`` rows, so the parameter count depends on the grid)::

    cascade (official):  r = row(x + pos_h);  m = GELU(BN(fuse_h([r, x]))) + pos_w;
                         out = fuse_w([x, col(m)])
    parallel:            r = row(x + pos_h);  c = col(x + pos_w);
                         out = fuse_w([x, GELU(BN(fuse_h([r, c])))])

``parallel`` is our definition for the paper's cascade-vs-parallel ablation (Table 8; no code published):
both passes read the same input, as in sMLP, and every parameter keeps its shape and role (the column pass
takes the place of the identity in ``fuse_h``, whose fused result takes the column pass's place in
``fuse_w``), so parameter counts are identical and one set of weights loads into both.

LSMM (Local Strip Mixing Module) on ``C''`` channels: depthwise ``k x L`` and ``L x k`` strips
(``L = lsmm_length``, official 3x7 and 7x3, no bias) and a re-weighting MLP
(1x1 ``C'' -> C''//2``, GELU, 1x1 ``-> 3C''``, both with bias) on the spatial mean of the three paths
gives per-channel softmax weights over ``(L x k strip, k x L strip, identity)``.

Deviations from the official code, none of which changes the function or the parameter count:

* tokens stay channels-last: the 1x1 convolutions run as ``nn.Linear`` on ``(B, N, C)`` and a 1x1 conv of
  a concatenation runs as two matrix products on weight slices (no concatenated copy); a strip pass is one
  batched matmul per patch channel over the ``k`` stacked shifted copies of its input (the official
  grouped convolution, same MACs; oneDNN's grouped conv is very slow on small grids); the LSMM gate
  averages the three paths separately and takes its softmax on a leading axis;
* taps that only ever see padding (offset ``>= H`` on an ``H x H`` grid, e.g. the 7-wide kernels on the
  2x2 and 1x1 grids of a 32x32 input) are skipped, in the strip passes and in the depthwise convolutions
  (:class:`mixnas.mixers._conv.DepthwiseConv2d`): they contribute exactly zero in the official code too and get
  no gradient there either, so only the MAC count (fvcore) drops, by those multiplications by padding;
* all knobs are explicit: ``strip_width`` also sets the ``3`` of LSMM's 3x7 / 7x3 strips (the paper calls
  that unit a Strip MLP of width 3 and length 7), ``patch_groups`` defaults to the official
  ``2 if C % 80 == 0 else 4`` on the full width, ``branches`` ``cgsmm`` / ``lsmm`` give all channels to one
  branch, and with an odd width CGSMM takes ``C // 2`` channels, LSMM the rest;
* initialisation matches the official code (PyTorch defaults, tables truncated-normal std 0.02); the
  backbone leaves these ``nn.Linear`` layers alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.layers import image_to_tokens, tokens_to_image
from mixnas.mixers._conv import DepthwiseConv2d, live_extent
from mixnas.registry import MixerContext, Param, register_mixer

BRANCHES = ("cgsmm+lsmm", "cgsmm", "lsmm")
ARRANGEMENTS = ("cascade", "parallel")


def branch_channels(dim: int, branches: str) -> tuple[int, int]:
    """Channels given to (CGSMM, LSMM) for a width and a ``branches`` choice."""
    if branches == "cgsmm+lsmm":
        return dim // 2, dim - dim // 2
    if branches == "cgsmm":
        return dim, 0
    return 0, dim


def default_patch_groups(ctx: MixerContext) -> int:
    """The official rule, applied to the full block width: 2 patches if it is a multiple of 80, else 4."""
    return 2 if ctx.dim % 80 == 0 else 4


def _linear(module: nn.Linear) -> nn.Linear:
    """Mark a linear layer that stands for an official 1x1 convolution: keep PyTorch's default init."""
    module._mixnas_custom_init = True
    return module


def _fuse(weight: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """``concat([first, second], -1) @ weight.T`` without materialising the concatenation."""
    k = first.shape[-1]
    return torch.addmm(F.linear(second.reshape(-1, second.shape[-1]), weight[:, k:]),
                       first.reshape(-1, k), weight[:, :k].t()).view(*first.shape[:-1], weight.shape[0])


# -- validity rules ---------------------------------------------------------------------------------------


def _square_grid(params, ctx: MixerContext) -> list[tuple[str, str]]:
    h, w = ctx.grid
    if h != w:
        return [("", f"the strip mixer needs a square token grid (its row and column MLPs share one size); "
                     f"found {h}x{w}")]
    return []


def _strip_width(params, ctx: MixerContext) -> list[tuple[str, str]]:
    k, side = params["strip_width"], ctx.grid[0]
    if k % 2 == 0:
        return [("strip_width", f"must be odd so the strip is centred on its row; allowed: 1, 3, 5, ... "
                                f"up to {2 * side + 1}, found {k}")]
    if k > 2 * side + 1:
        # Offsets >= side only ever read padding, so k > 2*side - 1 already has dead taps; the bound keeps
        # the official k = 3 valid on the 1x1 grid of a 32x32 input and rejects anything wider.
        return [("strip_width", f"{k} reaches {k // 2} rows away, past anything on this {side}x{side} grid "
                                f"(taps {side} or more rows away only read padding); allowed: odd values up "
                                f"to {2 * side + 1}")]
    return []


def _lsmm_length(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if params["lsmm_length"] % 2 == 0:
        return [("lsmm_length", f"must be odd so the local strip is centred; allowed: 1, 3, 5, 7, ..., "
                                f"found {params['lsmm_length']}")]
    return []


def _patch_groups(params, ctx: MixerContext) -> list[tuple[str, str]]:
    c_cg, c_ls = branch_channels(ctx.dim, params["branches"])
    if params["branches"] == "cgsmm+lsmm" and c_cg == 0:
        return [("branches", f"width {ctx.dim} cannot be split between CGSMM and LSMM; "
                             "use 'cgsmm' or 'lsmm'")]
    p = params["patch_groups"]
    if c_cg and c_cg % p:
        share = "half of" if c_ls else "all of"
        divisors = [d for d in range(1, c_cg + 1) if c_cg % d == 0]
        return [("patch_groups", f"the CGSMM branch has {c_cg} channels ({share} width {ctx.dim}), which "
                                 f"{p} patch groups do not divide; allowed: {', '.join(map(str, divisors))}")]
    return []


# -- modules ----------------------------------------------------------------------------------------------


class StripProjection(nn.Module):
    """One Strip MLP layer: per patch channel, an ``L -> L`` MLP along a line that reads ``k`` lines.

    ``weight[g, l_out, l_in, t]`` (the official grouped ``(1, k)`` convolution weight) and ``bias[g, l_out]``.
    ``forward(x5, along_rows)`` takes ``(B, L, L, P, G)`` (a square grid) and mixes along each row
    (``along_rows``) or each column, reading the neighbouring rows (columns); taps ``L`` or more lines away
    only ever read padding and are skipped.
    """

    def __init__(self, groups: int, length: int, taps: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, length, length, taps))
        self.bias = nn.Parameter(torch.empty(groups, length))
        bound = 1.0 / math.sqrt(length * taps)  # PyTorch's default for the official grouped conv
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        live = live_extent(taps, length)
        self.reach = live // 2
        self.live = slice((taps - live) // 2, (taps + live) // 2) if live < taps else None

    def forward(self, x5: Tensor, along_rows: bool) -> Tensor:
        if not along_rows:
            return self(x5.transpose(1, 2), True).transpose(1, 2)
        b, lines, length, p, g = x5.shape
        weight = self.weight if self.live is None else self.weight[..., self.live]
        reach, taps, m = self.reach, 2 * self.reach + 1, b * p
        # Per patch channel g, a (length, lines * B * P) matrix; the k taps are stacked under it.
        seq = x5.permute(4, 2, 1, 0, 3).reshape(g, length, lines, m)
        if reach:
            seq = F.pad(seq, (0, 0, reach, reach))
            seq = torch.stack([seq[:, :, t:t + lines] for t in range(taps)], 2)
        out = torch.bmm(weight.reshape(g, length, length * taps), seq.reshape(g, length * taps, lines * m))
        out = out + self.bias[:, :, None]
        return out.view(g, length, lines, b, p).permute(3, 2, 1, 4, 0)

    def extra_repr(self) -> str:
        g, length, _, k = self.weight.shape
        return f"groups={g}, length={length}, taps={k}"


class CascadeGroupStripMixing(nn.Module):
    """CGSMM: patch-grouped strip passes along rows and columns, each fused with its input."""

    def __init__(self, dim: int, side: int, strip_width: int, patch_groups: int, arrangement: str,
                 rel_pos: bool):
        super().__init__()
        self.patch_groups, self.cascade = patch_groups, arrangement == "cascade"
        g = dim // patch_groups
        self.proj_h = StripProjection(g, side, strip_width)
        self.proj_w = StripProjection(g, side, strip_width)
        self.fuse_h = _linear(nn.Linear(2 * dim, dim, bias=False))
        self.bn = nn.BatchNorm2d(dim)
        self.fuse_w = _linear(nn.Linear(2 * dim, dim, bias=False))
        if rel_pos:
            self.pos_h = nn.Parameter(torch.empty(2 * side + 1, dim))
            self.pos_w = nn.Parameter(torch.empty(2 * side + 1, dim))
            nn.init.trunc_normal_(self.pos_h, std=0.02)
            nn.init.trunc_normal_(self.pos_w, std=0.02)
            idx = torch.arange(side)
            self.register_buffer("pos_index", idx[None, :] - idx[:, None] + side, persistent=False)
        else:
            self.pos_h = self.pos_w = None

    def _pass(self, proj: StripProjection, x: Tensor, pos: Tensor | None, along_rows: bool) -> Tensor:
        if pos is not None:
            x = x + pos[self.pos_index]
        b, h, w, c = x.shape
        out = proj(x.view(b, h, w, self.patch_groups, c // self.patch_groups), along_rows)
        return out.reshape(b, h, w, c)

    def _mix_bn_gelu(self, x: Tensor) -> Tensor:
        return F.gelu(self.bn(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C')`` (channels last, possibly a channel slice) -> same shape."""
        rows = self._pass(self.proj_h, x, self.pos_h, True)
        if self.cascade:
            mid = self._mix_bn_gelu(_fuse(self.fuse_h.weight, rows, x))
            if self.pos_w is not None:
                mid = mid + self.pos_w[self.pos_index]
            cols = self._pass(self.proj_w, mid, None, False)
            return _fuse(self.fuse_w.weight, x, cols)
        cols = self._pass(self.proj_w, x, self.pos_w, False)
        return _fuse(self.fuse_w.weight, x, self._mix_bn_gelu(_fuse(self.fuse_h.weight, rows, cols)))


class LocalStripMixing(nn.Module):
    """LSMM: ``k x L`` and ``L x k`` depthwise strips and the identity, blended by softmax weights."""

    def __init__(self, dim: int, grid: tuple[int, int], strip_width: int, length: int):
        super().__init__()
        k = strip_width
        self.fc_h = DepthwiseConv2d(dim, (k, length), grid)
        self.fc_w = DepthwiseConv2d(dim, (length, k), grid)
        self.reweight_fc1 = _linear(nn.Linear(dim, max(1, dim // 2)))
        self.reweight_fc2 = _linear(nn.Linear(max(1, dim // 2), 3 * dim))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C'')`` (channels last, possibly a channel slice) -> same shape."""
        img = x.permute(0, 3, 1, 2)
        wide, tall = self.fc_h(img), self.fc_w(img)
        pooled = tall.mean((2, 3)) + wide.mean((2, 3)) + img.mean((2, 3))
        b, c = pooled.shape
        att = self.reweight_fc2(F.gelu(self.reweight_fc1(pooled))).view(b, c, 3)
        att = att.permute(2, 0, 1).softmax(0)[..., None, None]  # (3, B, C'', 1, 1); softmax(-1) is slower
        out = torch.addcmul(tall * att[0], wide, att[1])
        return torch.addcmul(out, img, att[2]).permute(0, 2, 3, 1)


@register_mixer("token", "strip", params=[
    Param("strip_width", int, 3, min=1,
          doc="rows (columns) each strip MLP reads: k of the paper's width ablation; also the 3 of LSMM's "
              "3x7 strips; odd (official 3)"),
    Param("patch_groups", int, default_patch_groups, min=1,
          doc="P, patches the CGSMM channels are split into, sharing strip weights (official: 2 if the "
              "width is a multiple of 80, else 4)"),
    Param("arrangement", str, "cascade", choices=ARRANGEMENTS,
          doc="cascade: the column pass reads the fused row pass (official); parallel: both read the input"),
    Param("branches", str, "cgsmm+lsmm", choices=BRANCHES,
          doc="which modules mix tokens: both on half the channels each (official), or one on all of them"),
    Param("lsmm_length", int, 7, min=1, doc="length of LSMM's local strips (the 7 of 3x7 / 7x3); odd"),
    Param("dwsc", bool, True, doc="the BN-GELU-depthwise 3x3 conv unit before the strip mixing block"),
    Param("input_mlp", bool, True, doc="the 1x1 conv + BN + GELU at the entry of the strip mixing block"),
    Param("rel_pos", bool, True, doc="CGSMM's relative-position tables added before each strip pass"),
], rules=[_square_grid, _strip_width, _lsmm_length, _patch_groups], spatial=True)
class StripTokenMixer(nn.Module):
    """Strip-MLP token mixing: DWSC, input MLP, CGSMM and LSMM on a channel split, 1x1 fuse."""

    def __init__(self, ctx: MixerContext, strip_width: int, patch_groups: int, arrangement: str,
                 branches: str, lsmm_length: int, dwsc: bool, input_mlp: bool, rel_pos: bool):
        super().__init__()
        c = ctx.dim
        self.grid = ctx.grid
        if dwsc:
            self.dwsc_bn = nn.BatchNorm2d(c)
            self.dwsc_conv = DepthwiseConv2d(c, 3, ctx.grid)
        else:
            self.dwsc_bn = self.dwsc_conv = None
        if input_mlp:
            self.mlp_fc = _linear(nn.Linear(c, c))
            self.mlp_bn = nn.BatchNorm2d(c)
        else:
            self.mlp_fc = self.mlp_bn = None
        self.split, c_ls = branch_channels(c, branches)
        self.cgsmm = (CascadeGroupStripMixing(self.split, ctx.grid[0], strip_width, patch_groups, arrangement,
                                              rel_pos) if self.split else None)
        self.lsmm = LocalStripMixing(c_ls, ctx.grid, strip_width, lsmm_length) if c_ls else None
        self.fuse = _linear(nn.Linear(c, c, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        if self.dwsc_conv is not None:
            x = image_to_tokens(self.dwsc_conv(F.gelu(self.dwsc_bn(tokens_to_image(x, self.grid)))))
        if self.mlp_fc is not None:
            x = image_to_tokens(F.gelu(self.mlp_bn(tokens_to_image(self.mlp_fc(x), self.grid))))
        x = x.reshape(b, self.grid[0], self.grid[1], c)
        if self.lsmm is None:
            return self.fuse(self.cgsmm(x)).view(b, n, c)
        if self.cgsmm is None:
            return self.fuse(self.lsmm(x)).reshape(b, n, c)
        k = self.split
        return _fuse(self.fuse.weight, self.cgsmm(x[..., :k]), self.lsmm(x[..., k:])).view(b, n, c)
