"""MLP-Mixer named models.

Paper: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021 (Table 1 gives the
specifications: layers, patch size, hidden size C, token-MLP width D_S, channel-MLP width D_C).
Official code: google-research/vision_transformer (JAX); timm's ``mlp_mixer.py`` is the PyTorch reference
whose exact parameter counts are reported here (``mixer_b16_224`` = 59,880,472).

Architecture: conv patch stem (with bias), blocks of LayerNorm (eps 1e-6) -> token MLP -> residual,
LayerNorm -> channel MLP -> residual, final LayerNorm, global mean pool, linear head.

Deviations from the official code: none in structure or parameter count. Initialisation follows timm
(xavier-uniform token MLPs, truncated-normal elsewhere); no pretrained weights are loaded.

Reported MACs: the paper reports none. Where a number is given it is the one published with timm's
pretrained weights (B/16: 12.6 G, L/16: 44.6 G) or in the comparison tables of later vision-MLP papers
(S/16: 3.8 G, e.g. ViP and AS-MLP); S/32 and B/32 have no published MAC count and show "—".
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Tolstikhin et al., MLP-Mixer: An all-MLP Architecture for Vision, NeurIPS 2021"


def mixer_arch(name: str, patch_size: int, dim: int, depth: int, token_hidden_dim: int,
               channel_hidden_dim: int, image_size: int = 224, in_channels: int = 3,
               num_classes: int = 1000) -> ArchConfig:
    """An isotropic MLP-Mixer."""
    stage = StageSpec(depth=depth, dim=dim,
                      token_mixer=MixerSpec.of("mixer", token_hidden_dim=token_hidden_dim),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=channel_hidden_dim),
                      norm="layernorm")
    return ArchConfig(stages=(stage,), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dim, bias=True),
                      head=HeadSpec(norm="layernorm", pool="mean"), layout="isotropic", name=name)


def _register(name: str, patch: int, dim: int, depth: int, ds: int, dc: int, reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return mixer_arch(name, patch, dim, depth, ds, dc, image_size, in_channels, num_classes)

    make.__doc__ = f"{name}: Mixer with patch {patch}, width {dim}, depth {depth}, D_S {ds}, D_C {dc}."
    register_model(name, reported=reported, family="mixer", paper=PAPER)(make)


_TIMM = "timm mlp_mixer.py parameter count"
_register("mixer_s32_224", 32, 512, 8, 256, 2048,
          Reported(19_104_624, None, f"{_TIMM}; paper Table 1: 19M", note="no published MACs"))
_register("mixer_s16_224", 16, 512, 8, 256, 2048,
          Reported(18_528_264, 3_800_000_000, f"{_TIMM}; paper Table 1: 18M; 3.8G MACs in ViP / AS-MLP tables"))
_register("mixer_b32_224", 32, 768, 12, 384, 3072,
          Reported(60_293_428, None, f"{_TIMM}; paper Table 1: 60M", note="no published MACs"))
_register("mixer_b16_224", 16, 768, 12, 384, 3072,
          Reported(59_880_472, 12_600_000_000, f"{_TIMM}; timm model card: 59.9M, 12.6 GMACs", top1=76.44))
_register("mixer_l16_224", 16, 1024, 24, 512, 4096,
          Reported(208_196_168, 44_600_000_000, f"{_TIMM}; timm model card: 208.2M, 44.6 GMACs", top1=71.76))
