"""Vision Permutator (ViP) named models.

Paper: Hou et al., "Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition", IEEE
TPAMI 2022 (arXiv 2106.12368). Official code: github.com/Andrew-Qibin/VisionPermutator, ``models/vip.py``
(``vip_s7``, ``vip_m7``, ``vip_l7``); the parameter counts below are those of the official definitions
(25,114,984 / 55,272,488 / 87,784,936 at 224 with 1000 classes; the README rounds them to 25M / 55M / 88M).

Architecture: 7x7 stride-7 conv patch stem with bias (a 32x32 grid at 224); a first group of Permutator
blocks at 32x32 with ``segment_dim`` 32, one 2x2 stride-2 conv with bias (the official ``Downsample``), and
a second group at 16x16 with ``segment_dim`` 16; blocks ``x + permute(LN(x))`` and ``x + mlp(LN(x))`` with a
3 x dim channel MLP; final LayerNorm, mean pool, linear head. The official lists four "stages" of which
only one boundary changes resolution (and, in ViP-M, width); consecutive official stages at one resolution
and width are one mixnas stage here (S: 4 | 3+8+3, M: 4+3 | 14+3, L: 8 | 8+16+4 blocks), which builds the
same network. See :mod:`mixnas.mixers.permute`.

Deviations from the official code (none changes the parameter count or the MACs):

* LayerNorm eps is 1e-6 (mixnas' ``layernorm``) where the official uses PyTorch's default 1e-5;
* stochastic depth: the official trains with a drop-path rate growing linearly from 0 to 0.1 over the
  blocks (``--drop-path 0.1``); mixnas rates are per stage, and these presets leave it at 0 (set
  ``drop_path`` per stage to train them);
* ``skip_lam`` (residual divided by it) is 1.0 in all three official models, so it is left out;
* the stem keeps PyTorch's default init (official too); linear layers are truncated normal std 0.02 with
  zero bias, as official. No pretrained weights are loaded.

MACs: fvcore counts 6.926 / 16.330 / 24.405 G for S / M / L, against the paper's 6.9 / 16.3 / 24.4 G
"FLOPs" (multiply-adds, printed to 0.1 G). The layer mapping was checked once against the official module
(weights copied across, eps set to 1e-6 there): outputs agree to 1e-5 on random 224x224 inputs.
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Hou et al., Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition, TPAMI 2022"


def vip_arch(name: str, dims: tuple[int, int], depths: tuple[int, int], segments: tuple[int, int] = (32, 16),
             patch_size: int = 7, mlp_ratio: int = 3, image_size: int = 224, in_channels: int = 3,
             num_classes: int = 1000) -> ArchConfig:
    """A two-resolution ViP: Permutator blocks, a biased 2x2 conv between the groups."""
    stages = tuple(
        StageSpec(depth=depth, dim=dim, token_mixer=MixerSpec.of("permute", segment_dim=seg),
                  channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=mlp_ratio * dim),
                  downsample="none" if i == 0 else "conv2x2_bias", norm="layernorm")
        for i, (dim, depth, seg) in enumerate(zip(dims, depths, segments)))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dims[0], bias=True),
                      head=HeadSpec(norm="layernorm", pool="mean"), layout="pyramid", name=name)


def _register(name: str, label: str, dims: tuple[int, int], depths: tuple[int, int], reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        # patch 7 where it divides the image (224), else 4 (32x32: an 8x8 grid); segment_dim follows the
        # grid side (32 and 16 at 224), which keeps the official rule H * S = C
        patch = 7 if image_size % 7 == 0 else 4
        side = image_size // patch
        return vip_arch(name, dims, depths, (side, side // 2), patch_size=patch, image_size=image_size,
                        in_channels=in_channels, num_classes=num_classes)

    make.__doc__ = f"{name}: ViP-{label}, widths {list(dims)}, depths {list(depths)}, patch 7."
    register_model(name, reported=reported, family="permute", paper=PAPER)(make)


_OFFICIAL = "official models/vip.py parameter count at 224 / 1000 classes"
_NOTE = "paper FLOPs are multiply-adds printed to 0.1G; fvcore: 6.926 / 16.330 / 24.405 G"
_register("vip_s7", "Small/7", (192, 384), (4, 14),
          Reported(25_114_984, 6_900_000_000, f"{_OFFICIAL}; README: 25M; paper: 6.9G FLOPs (MACs)", top1=81.5,
                   note=_NOTE))
_register("vip_m7", "Medium/7", (256, 512), (7, 17),
          Reported(55_272_488, 16_300_000_000, f"{_OFFICIAL}; README: 55M; paper: 16.3G FLOPs (MACs)", top1=82.7,
                   note=_NOTE))
_register("vip_l7", "Large/7", (256, 512), (8, 28),
          Reported(87_784_936, 24_400_000_000, f"{_OFFICIAL}; README: 88M; paper: 24.4G FLOPs (MACs)", top1=83.2,
                   note=_NOTE))
