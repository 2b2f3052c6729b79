"""The building blocks below the mixers and the model builder: token/image views, norms, drop path, stems,
downsamplers and the cross-stage fusion.

:mod:`mixnas.mixers` and :mod:`mixnas.network` build on this module; it depends on torch only (the config
types appear in annotations, never at run time), so a mixer never reaches a block through the module that
assembles models. Tokens travel as ``(B, N, C)`` (see :mod:`mixnas.registry` for the tensor contract);
spatial operations view them as channels-last NCHW.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from mixnas.config import InputSpec, StemSpec

def tokens_to_image(x: Tensor, grid: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` tokens -> ``(B, C, H, W)`` view (channels-last memory, no copy)."""
    b, _, c = x.shape
    return x.view(b, grid[0], grid[1], c).permute(0, 3, 1, 2)


def image_to_tokens(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> row-major ``(B, H*W, C)`` tokens (free when ``x`` is channels-last, else one copy).

    The result is always contiguous: a plain NCHW image (e.g. the stem's output on an NCHW batch) would
    otherwise give tokens with channel stride ``H*W``, which residual adds propagate through every block
    and which send each channels-last view to slow convolution paths.
    """
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c).contiguous()


def conv2d_fp32(img: Tensor, weight: Tensor, stride: int | tuple[int, ...] = 1, padding: int | tuple[int, ...] = 0,
                groups: int = 1) -> Tensor:
    """``F.conv2d(img, weight, None, stride, padding, 1, groups)``, run in the weight's precision under autocast.

    For depthwise and grouped convolutions: on small grids oneDNN's bf16 kernels for them are 2-6x slower
    than its fp32 ones on CPU (backward above all), so under CPU ``torch.autocast`` the input is cast up,
    the convolution runs without autocast, and the result is cast back to the input's dtype (what autocast
    would have returned). Elsewhere (no autocast, other devices) it is the plain call.
    """
    if img.is_cpu and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(img.to(weight.dtype), weight, None, stride, padding, 1, groups).to(img.dtype)
    return F.conv2d(img, weight, None, stride, padding, 1, groups)


class GroupedConv2d(nn.Conv2d):
    """``nn.Conv2d`` without bias that runs in fp32 under autocast (:func:`conv2d_fp32`)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, groups: int):
        super().__init__(in_dim, out_dim, kernel, stride, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return conv2d_fp32(x, self.weight, self.stride, self.padding, self.groups)


class TokenBatchNorm(nn.Module):
    """BatchNorm over the channel axis of ``(B, N, C)`` tokens (equal to ``BatchNorm2d`` on the image)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return self.bn(x.reshape(b * n, c)).view(b, n, c)


class Affine(nn.Module):
    """ResMLP's "norm": a per-channel ``alpha * x + beta`` (no statistics)."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


class LayerScale(nn.Module):
    """A learned per-channel scale of a residual branch, initialised to ``init`` (CaiT, ResMLP)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class TokenGroupNorm(nn.GroupNorm):
    """``GroupNorm(1, C)`` of the ``(B, C, H, W)`` image, on ``(B, N, C)`` tokens: statistics over all tokens
    and channels of a sample, a per-channel affine (AS-MLP's ``MyNorm``; PyTorch's default eps 1e-5)."""

    def __init__(self, dim: int):
        super().__init__(1, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = F.group_norm(x.transpose(1, 2), 1, self.weight, self.bias, self.eps)
        return y.transpose(1, 2).contiguous()


def make_norm(kind: str, dim: int) -> nn.Module:
    """The norm named ``kind`` (a config's ``norm`` value) over ``dim`` channels of tokens; identity for ``none``."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=1e-6)
    if kind == "batchnorm":
        return TokenBatchNorm(dim)
    if kind == "affine":
        return Affine(dim)
    if kind == "groupnorm":
        return TokenGroupNorm(dim)
    return nn.Identity()


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``rate`` while training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class PatchMerging(nn.Module):
    """2x2 stride-2 convolution between pyramid stages: halves the grid, changes the width."""

    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int], bias: bool = False):
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(in_dim, out_dim, 2, 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return image_to_tokens(self.conv(tokens_to_image(x, self.grid)))


class CrossScaleEmbedding(nn.Module):
    """RaftMLP's cross-scale MLP embedding (official ``CrossScaleMLPEmbedding``).

    Around every ``stride x stride`` patch, windows of each size in ``kernels`` (same centre, zero padding
    ``(k - stride) / 2``) are unfolded, concatenated and projected to ``out_dim`` by one linear layer with
    bias. Takes and returns NCHW-viewable data as ``(B, N, C)`` tokens (or an NCHW image for the stem).
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int, kernels: tuple[int, ...], bias: bool = True):
        super().__init__()
        self.stride, self.kernels = stride, kernels
        self.fc = nn.Linear(in_dim * sum(k * k for k in kernels), out_dim, bias=bias)

    def forward(self, img: Tensor) -> Tensor:  # (B, C, H, W) -> (B, H/s * W/s, out_dim)
        parts = [F.unfold(img, k, padding=(k - self.stride) // 2, stride=self.stride) for k in self.kernels]
        return self.fc(torch.cat(parts, dim=1).transpose(1, 2))


class CrossScaleMerging(nn.Module):
    """Cross-scale embedding between pyramid stages: 2x2 and 4x4 windows at stride 2 (RaftMLP levels 2, 3)."""

    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.embed = CrossScaleEmbedding(in_dim, out_dim, 2, (2, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(tokens_to_image(x, self.grid))


class NeighbourMerging(nn.Module):
    """Swin / AS-MLP patch merging: each 2x2 neighbourhood's ``4C`` channels (in the official order
    ``(0,0), (1,0), (0,1), (1,1)`` as (row, column) offsets), ``norm`` over ``4C``, then a linear map to the
    new width without bias (the official 1x1 convolution)."""

    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int], norm: str):
        super().__init__()
        self.grid = grid
        self.norm = make_norm(norm, 4 * in_dim)
        self.reduction = nn.Linear(4 * in_dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        h, w = self.grid
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h * w // 4, 4 * c)
        return self.reduction(self.norm(x))


class ConvBNReLUDownsample(nn.Module):
    """Hire-MLP's downsampling: a 3x3 stride-2 convolution (padding 1, with bias), BatchNorm, ReLU."""

    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(in_dim, out_dim, 3, 2, 1)
        self.norm = TokenBatchNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(image_to_tokens(self.conv(tokens_to_image(x, self.grid)))))


def make_downsample(kind: str, in_dim: int, out_dim: int, in_grid: tuple[int, int], norm: str) -> nn.Module:
    """The module between two stages for a :attr:`StageSpec.downsample` ``kind`` (identity for ``none``);
    ``norm`` is the later stage's norm, used by the ``merge2x2`` neighbour merging."""
    if kind == "conv2x2":
        return PatchMerging(in_dim, out_dim, in_grid)
    if kind == "conv2x2_bias":
        return PatchMerging(in_dim, out_dim, in_grid, bias=True)
    if kind == "cross_scale":
        return CrossScaleMerging(in_dim, out_dim, in_grid)
    if kind == "merge2x2":
        return NeighbourMerging(in_dim, out_dim, in_grid, norm)
    if kind == "conv3x3":
        return ConvBNReLUDownsample(in_dim, out_dim, in_grid)
    return nn.Identity()


def make_stem(stem: StemSpec, inp: InputSpec) -> nn.Module:
    """The patch embedding of ``stem``: a strided convolution (NCHW out), or RaftMLP's cross-scale embedding
    with kernels ``patch`` and ``2 x patch`` (tokens out; :func:`stem_tokens` tells the two apart)."""
    if stem.kind == "cross_scale":
        return CrossScaleEmbedding(inp.in_channels, stem.dim, stem.patch_size,
                                   (stem.patch_size, 2 * stem.patch_size), stem.bias)
    return nn.Conv2d(inp.in_channels, stem.dim, stem.kernel, stem.patch_size, stem.padding, bias=stem.bias)


def stem_tokens(stem: nn.Module, images: Tensor) -> Tensor:
    """``(B, N, C)`` tokens of ``images`` through a :func:`make_stem` module, whichever kind it is."""
    x = stem(images)
    return x if isinstance(stem, CrossScaleEmbedding) else image_to_tokens(x)


class CrossStageFusion(nn.Module):
    """Strip-MLP's cross-stage fusion, generalised to any number of stages.

    Each merged stage input ``i >= 1`` is carried to every later stage input ``k > i`` through a chain of
    grouped 2x2 stride-2 convolutions (``groups = dim_j``). With four stages this is exactly the official
    ``conv_s1_28``, ``conv_s1_14`` and ``conv_s2_14``.
    """

    def __init__(self, dims: list[int], grids: list[tuple[int, int]]):
        super().__init__()
        self.grids = grids
        self.chains = nn.ModuleDict()
        for i in range(1, len(dims) - 1):
            self.chains[str(i)] = nn.ModuleList(
                GroupedConv2d(dims[j], dims[j + 1], 2, 2, groups=dims[j]) for j in range(i, len(dims) - 1))

    def carry(self, i: int, merged: Tensor) -> list[Tensor]:
        """The contributions of stage input ``i`` to stage inputs ``i+1, i+2, ...`` (as tokens)."""
        if str(i) not in self.chains:
            return []
        y = tokens_to_image(merged, self.grids[i])
        out = []
        for conv in self.chains[str(i)]:
            y = conv(y)
            out.append(image_to_tokens(y))
        return out
