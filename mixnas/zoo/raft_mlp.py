"""RaftMLP named models.

Paper: Tatsunami and Taki, "RaftMLP: How Much Can Be Done Without Attention and with Less Spatial
Locality?", ACCV 2022 (arXiv 2108.04384; RaftMLP-S / M / L: 9.9M / 21.4M / 36.2M parameters).
Official code: github.com/okojoalg/raft-mlp, ``libs/models.py`` (``RaftMLP``) with
``configs/settings/imagenet-raft-mlp-cross-mlp-emb-{s,m,l}.yaml`` (serial permuted token mixing, cross-scale
MLP embedding, no shortcut heads); the counts below are those of the official model built from those files
(9,868,768 / 21,413,632 / 36,184,672 at 224 with 1000 classes).

Architecture (four levels, a hierarchy like Swin's): a cross-scale MLP embedding stem (4x4 and 8x8 windows
at stride 4, one linear layer), then levels of widths C, 2C or 192, 4C, 8C and depths 2, 2, 6, 2 entered by
cross-scale embeddings of 2x2 and 4x4 windows at stride 2 (levels 2 and 3) and by a 2x2 patch embedding with
bias (level 4, the official ``embedding_kernels: [2]``: ``downsample: conv2x2_bias``, the same linear map on
the same window); blocks ``raft(x)`` (vertical then horizontal, each ``x + MLP(LN(x))``, raft size 2, token
expansion 2) and ``x + mlp(LN(x))`` (4 x dim); final LayerNorm, mean pool, linear classifier. Widths:
S 64-128-256-512, M 96-192-384-768, L 128-192-512-1024 (as the official configuration files).
See :mod:`mixnas.mixers.raft` and :class:`mixnas.layers.CrossScaleEmbedding`.

Deviations from the official code (none changes the parameter count or the MACs): the channel-branch and
final LayerNorms have eps 1e-6 (mixnas' ``layernorm``) where the official uses 1e-5 (the raft mixer's own
norms keep 1e-5); stochastic depth (official 0.1 on every sub-block) is left at 0 in these presets; the
2x2 level-4 embedding is a convolution (its weight is the official linear weight reshaped); linear layers
are initialised truncated-normal where the official keeps PyTorch's defaults. No pretrained weights. The
layer mapping was checked once against the official model (weights copied across, LayerNorm weights
permuted): outputs agree to float precision on random 224x224 inputs.

MACs: fvcore counts 2.101 / 4.289 / 6.571 G at 224, as it does on the official model (2.101 / 4.289 /
6.571 G; the unfolds are copies, 0 MACs). No MAC figure is registered as reported: the paper's FLOP
numbers were not checked against a primary source here.
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Tatsunami and Taki, RaftMLP: How Much Can Be Done Without Attention and with Less Spatial Locality?, " \
        "ACCV 2022"
DOWNSAMPLES = ("none", "cross_scale", "cross_scale", "conv2x2_bias")


def raft_mlp_arch(name: str, dims: tuple[int, ...], depths: tuple[int, ...] = (2, 2, 6, 2), raft_size: int = 2,
                  token_expansion: int = 2, channel_ratio: int = 4, image_size: int = 224, in_channels: int = 3,
                  num_classes: int = 1000) -> ArchConfig:
    """A RaftMLP hierarchy: cross-scale embeddings, serial raft token mixing, channel MLPs."""
    stages = tuple(
        StageSpec(depth=depth, dim=dim,
                  token_mixer=MixerSpec.of("raft", raft_size=raft_size, token_expansion=token_expansion),
                  channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=channel_ratio * dim),
                  downsample=DOWNSAMPLES[i], norm="layernorm")
        for i, (dim, depth) in enumerate(zip(dims, depths)))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dims[0], bias=True, kind="cross_scale"),
                      head=HeadSpec(norm="layernorm", pool="mean"), layout="pyramid", name=name)


def _register(name: str, label: str, dims: tuple[int, ...], reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return raft_mlp_arch(name, dims, image_size=image_size, in_channels=in_channels, num_classes=num_classes)

    make.__doc__ = f"{name}: RaftMLP-{label}, widths {list(dims)}, depths [2, 2, 6, 2], raft size 2."
    register_model(name, reported=reported, family="raft", paper=PAPER)(make)


_OFFICIAL = "official libs/models.py RaftMLP parameter count with configs/settings/imagenet-raft-mlp-cross-mlp-emb"
_register("raftmlp_s", "S", (64, 128, 256, 512), Reported(9_868_768, None, f"{_OFFICIAL}-s.yaml; paper: 9.9M"))
_register("raftmlp_m", "M", (96, 192, 384, 768), Reported(21_413_632, None, f"{_OFFICIAL}-m.yaml; paper: 21.4M"))
_register("raftmlp_l", "L", (128, 192, 512, 1024), Reported(36_184_672, None, f"{_OFFICIAL}-l.yaml; paper: 36.2M"))
