"""Sparse-MLP named presets (mixnas' own configurations of the ``moe`` family).

Paper: Lou, Xue, Zheng and You, "Sparse-MLP: A Fully-MLP Architecture with Conditional Computation" (arXiv
2109.02008): an MLP-Mixer whose last blocks are Sparse blocks (a token-mixing MoE inside re-represent
layers, then a channel-mixing MoE). No official code was found, so these presets are not the paper's
models and report no numbers: they put Sparse blocks on top of timm's Mixer-S/16 and Mixer-B/16 so that
their cost can be compared with the dense models (``mixer_s16_224``, ``mixer_b16_224``).

* ``sparse_mixer_s16_224``: Mixer-S/16 (width 512, D_S 256, D_C 2048), 6 dense blocks then 2 Sparse blocks
  with 4 experts each, top-1 routing, capacity factor 1.0, re-represent ratio 2 (C' = 256, S' = 392),
  token experts ``392 -> 392 -> 392``, channel experts ``512 -> 2048 -> 512``.
* ``sparse_mixer_b16_224``: Mixer-B/16 (width 768, D_S 384, D_C 3072), 8 dense blocks then 4 Sparse blocks
  with 8 experts each, top-1 token routing and top-2 channel routing, capacity factor 1.0, re-represent
  ratio 2 (C' = 384, S' = 392).

See :mod:`mixnas.mixers.moe` for the routing, the load-balancing loss the trainer adds, and the MAC
convention (fixed-capacity expert buffers: MACs count what runs whatever the routing).
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Lou et al., Sparse-MLP: A Fully-MLP Architecture with Conditional Computation, arXiv 2109.02008"


def sparse_mixer_arch(name: str, dim: int, dense_depth: int, sparse_depth: int, token_hidden_dim: int,
                      channel_hidden_dim: int, num_experts: int, token_top_k: int = 1, channel_top_k: int = 1,
                      capacity_factor: float = 1.0, rerep_ratio: float = 2.0, token_expert_ratio: float = 1.0,
                      patch_size: int = 16, image_size: int = 224, in_channels: int = 3,
                      num_classes: int = 1000) -> ArchConfig:
    """An isotropic Mixer with ``dense_depth`` dense blocks followed by ``sparse_depth`` Sparse (MoE) blocks."""
    dense = StageSpec(depth=dense_depth, dim=dim,
                      token_mixer=MixerSpec.of("mixer", token_hidden_dim=token_hidden_dim),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=channel_hidden_dim))
    sparse = StageSpec(depth=sparse_depth, dim=dim,
                       token_mixer=MixerSpec.of("moe", num_experts=num_experts, top_k=token_top_k,
                                                capacity_factor=capacity_factor, rerep_ratio=rerep_ratio,
                                                expert_ratio=token_expert_ratio),
                       channel_mixer=MixerSpec.of("moe", num_experts=num_experts, top_k=channel_top_k,
                                                  capacity_factor=capacity_factor,
                                                  expert_ratio=channel_hidden_dim / dim))
    return ArchConfig(stages=(dense, sparse), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dim, bias=True),
                      head=HeadSpec(norm="layernorm", pool="mean"), layout="isotropic", name=name)


_PRESET = Reported(None, None, "mixnas preset after Sparse-MLP's design; not a published configuration",
                   note="nothing published to compare with")


@register_model("sparse_mixer_s16_224", family="moe", paper=PAPER, reported=_PRESET)
def sparse_mixer_s16_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """sparse_mixer_s16_224: Mixer-S/16 with its last 2 of 8 blocks Sparse (4 experts, top-1)."""
    return sparse_mixer_arch("sparse_mixer_s16_224", 512, 6, 2, 256, 2048, 4, image_size=image_size,
                             in_channels=in_channels, num_classes=num_classes)


@register_model("sparse_mixer_b16_224", family="moe", paper=PAPER, reported=_PRESET)
def sparse_mixer_b16_224(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """sparse_mixer_b16_224: Mixer-B/16 with its last 4 of 12 blocks Sparse (8 experts, top-1 / top-2)."""
    return sparse_mixer_arch("sparse_mixer_b16_224", 768, 8, 4, 384, 3072, 8, channel_top_k=2,
                             image_size=image_size, in_channels=in_channels, num_classes=num_classes)
