"""A textbook Strip-MLP for the training-throughput benchmark, written the way the official code is.

Paper: Cao et al., "Strip-MLP: Efficient Token Interaction for Vision MLP", ICCV 2023; official code:
github.com/Med-Process/Strip_MLP, ``models/strip_mlp.py`` (``StripMLPNet``). Like the official model, this
one keeps NCHW images throughout: 1x1 ``nn.Conv2d`` layers, ``torch.cat`` before every fusing 1x1 conv, the
strip passes as grouped ``(1, 3)`` convolutions over the ``(B, G*W, P, H)`` rearrangement, relative-position
tables indexed per call, full-size depthwise kernels (7x7 on a 2x2 grid included), GRN with ``torch.norm``,
and a BatchNorm2d head. It is independent of :mod:`mixnas` so that the benchmark compares mixnas against
something it does not share code with.

Differences from the official file, none of which changes the function or the parameter count: any
number of stages (the official cross-stage fusion, ``conv_s1_28`` / ``conv_s1_14`` / ``conv_s2_14`` for four
stages, carries every merged stage input from the second on to each later stage input through a chain of
grouped 2x2 convolutions; mixnas generalises it the same way); no drop-path (the official blocks hard-code
0.1; the benchmark's model has none, and it is the identity when evaluating); no unused imports.

:func:`load_mixnas_weights` copies a mixnas ``strip_mlp_arch`` model's parameters and BatchNorm buffers into
this one (1x1 convolutions from linear weights, strip weights reshaped), so a test can check that both
compute the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class RelativePosition(nn.Module):
    """A ``(2 * max + 1, C)`` table; ``forward(H, W)`` gives ``(H, W, C)`` entries ``table[w - h + max]``."""

    def __init__(self, channels: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.embeddings_table = nn.Parameter(torch.empty(2 * max_distance + 1, channels))
        nn.init.trunc_normal_(self.embeddings_table, std=0.02)

    def forward(self, rows: int, cols: int) -> Tensor:
        distance = torch.arange(cols)[None, :] - torch.arange(rows)[:, None]
        distance = distance.clamp(-self.max_distance, self.max_distance) + self.max_distance
        return self.embeddings_table[distance]


class DepthWiseConv(nn.Module):
    """BN, GELU, depthwise 3x3 conv without bias (the official ``DepthWise_Conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.gelu(self.bn(x)))


class StripMixingBlock(nn.Module):
    """Input MLP, then CGSMM on the first half of the channels and LSMM on the second, then a 1x1 fuse."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        half = channels // 2
        patches = 2 if channels % 80 == 0 else 4
        self.groups = half // patches  # channels per patch, sharing the strip weights
        g, k = self.groups, 3
        self.mlp = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.GELU())
        # CGSMM
        self.proj_h = nn.Conv2d(g * side, g * side, (1, k), 1, (0, k // 2), groups=g)
        self.proj_w = nn.Conv2d(g * side, g * side, (1, k), 1, (0, k // 2), groups=g)
        self.fuse_h = nn.Conv2d(channels, half, 1, bias=False)
        self.bn = nn.BatchNorm2d(half)
        self.fuse_w = nn.Conv2d(channels, half, 1, bias=False)
        self.pos_h = RelativePosition(half, side)
        self.pos_w = RelativePosition(half, side)
        # LSMM
        self.fc_h = nn.Conv2d(half, half, (3, 7), 1, (1, 3), groups=half, bias=False)
        self.fc_w = nn.Conv2d(half, half, (7, 3), 1, (3, 1), groups=half, bias=False)
        self.reweight = nn.Sequential(nn.Conv2d(half, half // 2, 1), nn.GELU(), nn.Conv2d(half // 2, 3 * half, 1))
        self.fuse = nn.Conv2d(channels, channels, 1, bias=False)

    def cgsmm(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, p = self.groups, c // self.groups
        pos_h = self.pos_h(h, w).permute(2, 0, 1)[None]
        pos_w = self.pos_w(h, w).permute(2, 0, 1)[None]
        # Along rows: channel c = p*G + g; the grouped conv's channels are (g, w), its image (p, h).
        r = (x + pos_h).view(n, p, g, h, w).permute(0, 2, 4, 1, 3).reshape(n, g * w, p, h)
        r = self.proj_h(r).view(n, g, w, p, h).permute(0, 3, 1, 4, 2).reshape(n, c, h, w)
        m = F.gelu(self.bn(self.fuse_h(torch.cat([r, x], 1)))) + pos_w
        # Along columns: the grouped conv's channels are (g, h), its image (p, w).
        col = m.view(n, p, g * h, w).permute(0, 2, 1, 3)
        col = self.proj_w(col).permute(0, 2, 1, 3).reshape(n, c, h, w)
        return self.fuse_w(torch.cat([x, col], 1))

    def lsmm(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        wide, tall = self.fc_h(x), self.fc_w(x)
        att = self.reweight(F.adaptive_avg_pool2d(tall + wide + x, 1)).reshape(n, c, 3)
        att = att.permute(2, 0, 1).softmax(0)[..., None, None]
        return tall * att[0] + wide * att[1] + x * att[2]

    def forward(self, x: Tensor) -> Tensor:
        x = self.mlp(x)
        half = x.shape[1] // 2
        return self.fuse(torch.cat([self.cgsmm(x[:, :half]), self.lsmm(x[:, half:])], 1))


class GRN(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ChannelMixing(nn.Module):
    """Depthwise 7x7 conv, then (channels last) LayerNorm, Linear, GELU, GRN, Linear."""

    def __init__(self, channels: int, alpha: int):
        super().__init__()
        self.conv_77 = nn.Conv2d(channels, channels, 7, 1, 3, groups=channels, bias=False)
        self.layer_norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, alpha * channels)
        self.grn = GRN(alpha * channels)
        self.fc2 = nn.Linear(alpha * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer_norm(self.conv_77(x).permute(0, 2, 3, 1))
        return self.fc2(self.grn(F.gelu(self.fc1(x)))).permute(0, 3, 1, 2)


class BasicBlock(nn.Module):
    def __init__(self, channels: int, side: int, alpha: int):
        super().__init__()
        self.dwsc = DepthWiseConv(channels)
        self.smlp_block = StripMixingBlock(channels, side)
        self.channel_mixing = ChannelMixing(channels, alpha)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.smlp_block(self.dwsc(x))
        return x + self.channel_mixing(x)


class RefStripMLP(nn.Module):
    def __init__(self, image_size: int, in_chans: int, num_classes: int, embed_dim: int, layers: tuple[int, ...],
                 alpha: int = 3, patch_size: int = 4):
        super().__init__()
        dims = [embed_dim * 2 ** i for i in range(len(layers))]
        sides = [image_size // patch_size // 2 ** i for i in range(len(layers))]
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size, bias=False)
        self.stages = nn.ModuleList(
            nn.Sequential(*[BasicBlock(d, s, alpha) for _ in range(n)])
            for d, s, n in zip(dims, sides, layers))
        self.merging = nn.ModuleList(nn.Conv2d(dims[i], dims[i + 1], 2, 2, bias=False) for i in range(len(dims) - 1))
        # fusion[i - 1][j - i]: stage input i (i >= 1) carried one stage further, from width dims[j].
        self.fusion = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(dims[j], dims[j + 1], 2, 2, groups=dims[j], bias=False)
                          for j in range(i, len(dims) - 1))
            for i in range(1, len(dims) - 1))
        self.norm = nn.BatchNorm2d(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages[0](self.patch_embed(x))
        pending: dict[int, list[Tensor]] = {}
        for i in range(1, len(self.stages)):
            x = self.merging[i - 1](x)
            carried = x
            for extra in pending.pop(i, []):
                x = x + extra
            if i - 1 < len(self.fusion):
                for k, conv in enumerate(self.fusion[i - 1], start=i + 1):
                    carried = conv(carried)
                    pending.setdefault(k, []).append(carried)
            x = self.stages[i](x)
        return self.head(self.norm(x).mean(dim=(2, 3)))


@torch.no_grad()
def load_mixnas_weights(ref: RefStripMLP, ours: nn.Module) -> None:
    """Copy a mixnas ``strip_mlp_arch`` network's weights (and BatchNorm statistics) into ``ref``."""

    def put(dst: nn.Module, src: nn.Module) -> None:
        own = dict(dst.named_parameters()) | dict(dst.named_buffers())
        theirs = dict(src.named_parameters()) | dict(src.named_buffers())
        assert own.keys() == theirs.keys(), (own.keys(), theirs.keys())
        for name, value in theirs.items():
            own[name].copy_(value.reshape(own[name].shape))

    def conv(dst: nn.Conv2d, src: nn.Module) -> None:  # a 1x1 conv or a grouped strip conv from its mixnas form
        dst.weight.copy_(src.weight.reshape(dst.weight.shape))
        if dst.bias is not None:
            dst.bias.copy_(src.bias.reshape(dst.bias.shape))

    put(ref.patch_embed, ours.stem)
    for i, stage in enumerate(ours.stages):
        if i:
            put(ref.merging[i - 1], stage.downsample.conv)
        for dst, src in zip(ref.stages[i], stage.blocks):
            tm, cm, sb = src.token_mixer, src.channel_mixer, dst.smlp_block
            put(dst.dwsc.bn, tm.dwsc_bn)
            put(dst.dwsc.conv, tm.dwsc_conv)
            conv(sb.mlp[0], tm.mlp_fc)
            put(sb.mlp[1], tm.mlp_bn)
            for name in ("proj_h", "proj_w", "fuse_h", "fuse_w"):
                conv(getattr(sb, name), getattr(tm.cgsmm, name))
            put(sb.bn, tm.cgsmm.bn)
            sb.pos_h.embeddings_table.copy_(tm.cgsmm.pos_h)
            sb.pos_w.embeddings_table.copy_(tm.cgsmm.pos_w)
            put(sb.fc_h, tm.lsmm.fc_h)
            put(sb.fc_w, tm.lsmm.fc_w)
            conv(sb.reweight[0], tm.lsmm.reweight_fc1)
            conv(sb.reweight[2], tm.lsmm.reweight_fc2)
            conv(sb.fuse, tm.fuse)
            put(dst.channel_mixing.conv_77, cm.dwconv)
            put(dst.channel_mixing.layer_norm, cm.norm)
            put(dst.channel_mixing.fc1, cm.fc1)
            put(dst.channel_mixing.grn, cm.grn)
            put(dst.channel_mixing.fc2, cm.fc2)
    for i, chain in enumerate(ref.fusion, start=1):
        for dst, src in zip(chain, ours.fusion.chains[str(i)]):
            put(dst, src)
    put(ref.norm, ours.head_norm.bn)
    put(ref.head, ours.head)
