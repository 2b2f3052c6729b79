"""ResMLP named models.

Paper: Touvron et al., "ResMLP: Feedforward networks for image classification with data-efficient
training", IEEE TPAMI 2022 (arXiv 2105.03404; Table 1: ResMLP-S12 15M params, 3.0 GFLOPs).
Official code: facebookresearch/deit (``resmlp_models.py``); timm's ``mlp_mixer.py`` is the PyTorch
reference whose exact parameter count and published GMACs are reported here (``resmlp_12_224``:
15,350,872 parameters, 3.01 GMACs).

Architecture: 16x16 conv patch stem with bias, no stem norm; isotropic blocks
``x + ls1 * linear_tokens(affine1(x))`` then ``x + ls2 * mlp(affine2(x))`` (``affine`` norm, layer-scale
init 0.1 for depth 12, 1e-5 for 24, 1e-6 for 36, channel MLP 4 x dim); final affine, mean pool, linear head.
See :mod:`mixnas.mixers.resmlp`.

Deviations from timm / the official code: none in structure or parameter count. Initialisation: the token
linear layer as timm (xavier uniform, zero bias); the channel MLP and head as the mixnas backbone
(truncated normal std 0.02, zero bias) where timm uses xavier uniform and a zero head; the stem keeps
PyTorch's default (timm: LeCun normal). No pretrained weights are loaded.

MACs: fvcore counts the convolutions and linear layers; the affine norms and layer scales are elementwise
(0 MACs, as in timm's published figure).
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Touvron et al., ResMLP: Feedforward networks for image classification, TPAMI 2022"


def resmlp_arch(name: str, depth: int, dim: int = 384, patch_size: int = 16, layer_scale: float = 0.1,
                mlp_ratio: int = 4, image_size: int = 224, in_channels: int = 3,
                num_classes: int = 1000) -> ArchConfig:
    """An isotropic ResMLP: affine norms, linear token mixing, layer-scaled residual branches."""
    stage = StageSpec(depth=depth, dim=dim, token_mixer=MixerSpec.of("resmlp"),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=mlp_ratio * dim),
                      norm="affine", layer_scale=layer_scale)
    return ArchConfig(stages=(stage,), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dim, bias=True),
                      head=HeadSpec(norm="affine", pool="mean"), layout="isotropic", name=name)


@register_model("resmlp_12_224", family="resmlp", paper=PAPER, reported=Reported(
    15_350_872, 3_010_000_000, "timm mlp_mixer.py parameter count; timm model card: 15.4M params, 3.0 GMACs "
                               "(3.01 in timm's results table); paper Table 1: 15M, 3.0G", top1=76.6))
def resmlp_12_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """resmlp_12_224: ResMLP-S12, width 384, depth 12, patch 16, layer-scale init 0.1."""
    return resmlp_arch("resmlp_12_224", 12, image_size=image_size, in_channels=in_channels,
                       num_classes=num_classes)


@register_model("resmlp_24_224", family="resmlp", paper=PAPER, reported=Reported(
    30_020_680, 5_960_000_000, "parameter count of timm's mlp_mixer.py definition (ResBlock x 24); timm model "
                               "card: 30.0M params, 5.96 GMACs; paper Table 1: 30M, 6.0G", top1=79.4))
def resmlp_24_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """resmlp_24_224: ResMLP-S24, width 384, depth 24, patch 16, layer-scale init 1e-5."""
    return resmlp_arch("resmlp_24_224", 24, layer_scale=1e-5, image_size=image_size, in_channels=in_channels,
                       num_classes=num_classes)
