"""Tiny architectures shared by the measurement tests (imported as ``from _archs import ...``)."""

from __future__ import annotations

from mixnas.config import ArchConfig, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.zoo.mlp_mixer import mixer_arch
from mixnas.zoo.vit import vit_arch


def tiny_mixer() -> ArchConfig:
    return mixer_arch("tiny_mixer", patch_size=4, dim=32, depth=2, token_hidden_dim=16, channel_hidden_dim=64,
                      image_size=32, num_classes=10)


def tiny_vit() -> ArchConfig:
    return vit_arch("tiny_vit", patch_size=4, dim=32, depth=2, num_heads=2, image_size=32, num_classes=10)


def tiny_pyramid(stages: int = 3) -> ArchConfig:
    """Pyramid stages (8x8, 4x4, 2x2 ... grids at 32x32 input) with cross-stage fusion and a BatchNorm stage."""
    def stage(dim, downsample="none", norm="layernorm"):
        return StageSpec(depth=1, dim=dim, token_mixer=MixerSpec.of("mixer"), channel_mixer=MixerSpec.of("mlp"),
                         downsample=downsample, norm=norm)
    specs = [stage(16), stage(32, "conv2x2", "batchnorm"), stage(64, "conv2x2")] + [stage(64, "conv2x2")] * (stages - 3)
    return ArchConfig(stages=tuple(specs), input=InputSpec(32 * 2 ** (stages - 3), 3, 10),
                      stem=StemSpec(patch_size=4, dim=16), layout="pyramid", cross_stage_fusion=True,
                      name="tiny_pyramid")
