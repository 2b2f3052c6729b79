"""gMLP named models.

Paper: Liu et al., "Pay Attention to MLPs", NeurIPS 2021 (arXiv 2105.08050; Table 1: gMLP-Ti/S/B with
d_model 128 / 256 / 512, d_ffn 768 / 1536 / 3072, 30 layers, patch 16; gMLP-S 20M params, 4.5 GFLOPs).
No official code; timm's ``mlp_mixer.py`` (``gmlp_s16_224``) is the PyTorch reference whose exact parameter
count and published GMACs are reported here (19,422,656 parameters, 4.42 GMACs).

Architecture: 16x16 conv patch stem with bias; 30 single-branch blocks ``x + gmlp(LayerNorm(x))`` (the
``gmlp`` token mixer with hidden width 6 x dim and the ``none`` channel mixer, see
:mod:`mixnas.mixers.gmlp`); final LayerNorm, mean pool, linear head.

Deviations from timm: none in structure or parameter count. Block norms use eps 1e-6 as timm; the SGU's
LayerNorm keeps PyTorch's 1e-5 as timm. The stem and head are initialised by the mixnas backbone (PyTorch
default and truncated normal) where timm uses LeCun normal and a zero head. No pretrained weights.

MACs: fvcore counts the linear layers, the spatial projection and LayerNorm (5 per element), as in timm's
figure; the gating product is elementwise (0 MACs).
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Liu et al., Pay Attention to MLPs, NeurIPS 2021"


def gmlp_arch(name: str, dim: int, depth: int = 30, patch_size: int = 16, ffn_ratio: int = 6,
              image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """An isotropic gMLP: single-branch blocks of a gated MLP with a spatial gating unit."""
    stage = StageSpec(depth=depth, dim=dim, token_mixer=MixerSpec.of("gmlp", hidden_dim=ffn_ratio * dim),
                      channel_mixer=MixerSpec.of("none"), norm="layernorm")
    return ArchConfig(stages=(stage,), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dim, bias=True),
                      head=HeadSpec(norm="layernorm", pool="mean"), layout="isotropic", name=name)


@register_model("gmlp_s16_224", family="gmlp", paper=PAPER, reported=Reported(
    19_422_656, 4_420_000_000, "timm mlp_mixer.py parameter count; timm model card: 19.4M params, 4.4 GMACs "
                               "(4.42 in timm's results table); paper Table 1: 20M, 4.5G", top1=79.6))
def gmlp_s16_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """gmlp_s16_224: gMLP-S, width 256, depth 30, d_ffn 1536, patch 16."""
    return gmlp_arch("gmlp_s16_224", 256, image_size=image_size, in_channels=in_channels, num_classes=num_classes)


@register_model("gmlp_ti16_224", family="gmlp", paper=PAPER, reported=Reported(
    5_867_328, None, "parameter count of timm's mlp_mixer.py definition (timm: 5.87M); paper Table 1: 6M "
                 "params, 1.4G FLOPs",
    note="the paper's 1.4G is rounded to 0.1G; not compared"))
def gmlp_ti16_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """gmlp_ti16_224: gMLP-Ti, width 128, depth 30, d_ffn 768, patch 16."""
    return gmlp_arch("gmlp_ti16_224", 128, image_size=image_size, in_channels=in_channels,
                     num_classes=num_classes)
