"""Model building: ``build_model(arch)`` turns an :class:`ArchConfig` into an ``nn.Module``.

One backbone serves every family: a patch stem, stages of residual blocks
(``x + token_mixer(norm(x))``, ``x + channel_mixer(norm(x))``), optional patch merging between stages,
optional Strip-MLP cross-stage fusion, and a pooled linear head. Tokens travel as ``(B, N, C)`` (see
:mod:`mixnas.registry` for the tensor contract). This module only assembles: the building blocks (norms,
drop path, stems, downsamplers, the fusion) live in :mod:`mixnas.layers`, the mixers in :mod:`mixnas.mixers`.

``build_model`` is pure: it reads nothing but its arguments, and seeds its own initialisation inside a
forked RNG so the caller's random state is untouched and the same (arch, seed) gives the same weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from mixnas.config import ArchConfig, StageSpec
from mixnas.layers import (
    CrossStageFusion,
    DropPath,
    LayerScale,
    make_downsample,
    make_norm,
    make_stem,
    stem_tokens,
)
from mixnas.registry import MixerContext, get_mixer


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


class Stage(nn.Module):
    """One stage: the downsampler from the previous width and grid, then ``depth`` blocks."""

    def __init__(self, stage: StageSpec, ctx: MixerContext, in_dim: int, in_grid: tuple[int, int]):
        super().__init__()
        self.downsample = make_downsample(stage.downsample, in_dim, stage.dim, in_grid, stage.norm)
        self.blocks = nn.Sequential(*[Block(stage, replace(ctx, block_index=j)) for j in range(stage.depth)])


class Network(nn.Module):
    """The vision-MLP backbone and classifier described by an :class:`ArchConfig`."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        inp, stem = arch.input, arch.stem
        self.grids = arch.grids()
        contexts = arch.contexts()
        self.stem = make_stem(stem, inp)
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
        x = self.stem_act(self.stem_norm(stem_tokens(self.stem, images)))
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
