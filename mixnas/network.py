"""Model building: ``build_model(arch)`` turns an :class:`ArchConfig` into an ``nn.Module``.

One backbone serves every family: a patch stem, stages of residual blocks
(``x + token_mixer(norm(x))``, ``x + channel_mixer(norm(x))``), optional patch merging between stages,
optional Strip-MLP cross-stage fusion, and a pooled linear head. Tokens travel as ``(B, N, C)`` (see
:mod:`mixnas.registry` for the tensor contract); spatial operations view them as channels-last NCHW.

``build_model`` is pure: it reads nothing but its arguments, and seeds its own initialisation inside a
forked RNG so the caller's random state is untouched and the same (arch, seed) gives the same weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.config import ArchConfig, StageSpec
from mixnas.registry import MixerContext, get_mixer


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


class Block(nn.Module):
    """A residual token-mixing + channel-mixing block.

    ``x + ls1 * token_mixer(norm1(x))`` then ``x + ls2 * channel_mixer(norm2(x))``, where the layer scales
    exist only with ``stage.layer_scale > 0``, ``norm1`` is skipped for a token mixer that normalises its
    input itself (``own_norm``) and the whole channel branch (norm included) for the ``none`` channel mixer
    (gMLP, whose token mixer is a complete gated MLP).
    """

    def __init__(self, stage: StageSpec, ctx: MixerContext):
        super().__init__()
        token = get_mixer("token", stage.token_mixer.name)
        self.norm1 = nn.Identity() if token.own_norm else make_norm(stage.token_mixer_norm, ctx.dim)
        self.token_mixer = token.build(stage.token_mixer.as_dict(), ctx)
        self.ls1 = LayerScale(ctx.dim, stage.layer_scale) if stage.layer_scale > 0 else nn.Identity()
        if stage.channel_mixer.name == "none":
            self.norm2 = self.channel_mixer = self.ls2 = None
        else:
            self.norm2 = make_norm(stage.norm, ctx.dim)
            self.channel_mixer = get_mixer("channel", stage.channel_mixer.name).build(
                stage.channel_mixer.as_dict(), ctx)
            self.ls2 = LayerScale(ctx.dim, stage.layer_scale) if stage.layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(stage.drop_path) if stage.drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.ls1(self.token_mixer(self.norm1(x))))
        if self.channel_mixer is None:
            return x
        return x + self.drop_path(self.ls2(self.channel_mixer(self.norm2(x))))


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


def make_downsample(stage: StageSpec, in_dim: int, in_grid: tuple[int, int]) -> nn.Module:
    if stage.downsample == "conv2x2":
        return PatchMerging(in_dim, stage.dim, in_grid)
    if stage.downsample == "conv2x2_bias":
        return PatchMerging(in_dim, stage.dim, in_grid, bias=True)
    if stage.downsample == "cross_scale":
        return CrossScaleMerging(in_dim, stage.dim, in_grid)
    if stage.downsample == "merge2x2":
        return NeighbourMerging(in_dim, stage.dim, in_grid, stage.norm)
    if stage.downsample == "conv3x3":
        return ConvBNReLUDownsample(in_dim, stage.dim, in_grid)
    return nn.Identity()


class Stage(nn.Module):
    def __init__(self, stage: StageSpec, ctx: MixerContext, in_dim: int, in_grid: tuple[int, int]):
        super().__init__()
        self.downsample = make_downsample(stage, in_dim, in_grid)
        self.blocks = nn.Sequential(*[Block(stage, replace(ctx, block_index=j)) for j in range(stage.depth)])


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


class Network(nn.Module):
    """The vision-MLP backbone and classifier described by an :class:`ArchConfig`."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        inp, stem = arch.input, arch.stem
        self.grids = arch.grids()
        contexts = arch.contexts()
        self.stem = (CrossScaleEmbedding(inp.in_channels, stem.dim, stem.patch_size,
                                         (stem.patch_size, 2 * stem.patch_size), stem.bias)
                     if stem.kind == "cross_scale"
                     else nn.Conv2d(inp.in_channels, stem.dim, stem.kernel, stem.patch_size, stem.padding,
                                    bias=stem.bias))
        self.stem_norm = make_norm(stem.norm, stem.dim)
        self.stem_act = nn.ReLU() if stem.act == "relu" else nn.Identity()
        self.num_prefix_tokens = arch.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, stem.dim)) if arch.class_token else None
        n_tokens = contexts[0].num_tokens
        self.pos_embed = (nn.Parameter(torch.zeros(1, n_tokens, stem.dim)) if arch.pos_embed == "learned"
                          else None)
        stages, in_dim, in_grid = [], stem.dim, self.grids[0]
        for spec, ctx in zip(arch.stages, contexts):
            stages.append(Stage(spec, ctx, in_dim, in_grid))
            in_dim, in_grid = spec.dim, ctx.grid
        self.stages = nn.ModuleList(stages)
        self.fusion = (CrossStageFusion([s.dim for s in arch.stages], self.grids) if arch.cross_stage_fusion
                       else None)
        self.head_norm = make_norm(arch.head.norm, in_dim)
        self.head_drop = nn.Dropout(arch.head.dropout)
        self.head = nn.Linear(in_dim, inp.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear) and not getattr(m, "_mixnas_custom_init", False):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # The forward pass in named parts ("stem", "stages.i", "head", as in complexity rows), so latency can
    # time each part on its own input. ``pending`` holds fusion contributions waiting for later stages.
    def forward_stem(self, images: Tensor) -> Tensor:
        x = self.stem(images)
        x = self.stem_act(self.stem_norm(x if isinstance(self.stem, CrossScaleEmbedding) else image_to_tokens(x)))
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return x

    def forward_stage(self, i: int, x: Tensor, pending: dict[int, list[Tensor]]) -> Tensor:
        """Stage ``i``: patch merging, cross-stage fusion in and out (``pending`` is updated), blocks."""
        stage = self.stages[i]
        x = stage.downsample(x)
        if self.fusion is not None and i > 0:
            merged = x
            for extra in pending.pop(i, []):
                x = x + extra
            for k, y in enumerate(self.fusion.carry(i, merged), start=i + 1):
                pending.setdefault(k, []).append(y)
        return stage.blocks(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(self.head_drop(self.pool(self.head_norm(x))))

    def forward_features(self, images: Tensor) -> Tensor:
        x = self.forward_stem(images)
        pending: dict[int, list[Tensor]] = {}
        for i in range(len(self.stages)):
            x = self.forward_stage(i, x, pending)
        return self.head_norm(x)

    def pool(self, x: Tensor) -> Tensor:
        if self.arch.head.pool == "cls":
            return x[:, 0]
        return x[:, self.num_prefix_tokens:].mean(dim=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.head_drop(self.pool(self.forward_features(images))))


def build_model(arch: ArchConfig, seed: int = 0) -> Network:
    """Build the network for ``arch`` with weights initialised from ``seed`` (the global RNG is untouched)."""
    if not isinstance(arch, ArchConfig):
        raise TypeError(f"build_model takes an ArchConfig, got {type(arch).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Network(arch)
