"""Strip-MLP named models.

Paper: Cao et al., "Strip-MLP: Efficient Token Interaction for Vision MLP", ICCV 2023 (Sec. 3.5 gives the
variants: T* C=80 {2,2,6,2}, T C=80 {2,2,12,2}, S C=96 {2,2,18,2}, B C=112 {2,2,18,2}).
Official code: github.com/Med-Process/Strip_MLP, ``models/strip_mlp.py`` (``StripMLPNet``) with the
``configs/smlp_*_imagenet1k.yaml`` files (same widths and depths, ``ALPHA: 3``). Its README reports the
ImageNet-1K numbers quoted below (params, "FLOPs" that are multiply-accumulates counted by ptflops, top-1).

Architecture: 4x4 stride-4 patch stem (conv without bias, no norm); four stages of widths C, 2C, 4C, 8C
entered by 2x2 stride-2 convolutions without bias; blocks ``x + drop_path(strip(x))`` then
``x + drop_path(grn(x))`` with no pre-norm (the official ``BasicBlock``) and drop-path 0.1 in every block
(hard-coded there); cross-stage fusion (the official ``conv_s1_28``, ``conv_s1_14``, ``conv_s2_14``);
BatchNorm, global mean pool and a linear head. See :mod:`mixnas.mixers.strip` and :mod:`mixnas.mixers.grn`.

Deviations from the official code: none in structure or parameter count (the counts below are the
official model's, and the official weights load one to one, with 1x1 convolutions reshaped to linear
weights). The head's linear layer is initialised by the backbone (truncated normal, std 0.02) where the
official code keeps PyTorch's default; no pretrained weights are loaded. The official relative-position
tables are sized from the grid, so parameter counts depend on ``image_size`` (the reported ones are at 224).

MACs at 224: fvcore counts 2.531 / 3.664 / 6.827 / 9.212 G for T* / T / S / B, as it does on the official
model (to 0.03 %). The README's 2.5 / 3.7 / 6.8 / 9.2 G are the authors' ptflops counts rounded to 0.1 G
(ptflops 0.7.5 on the official model: 2.540 / 3.676 / 6.844 / 9.233 G; it also counts BatchNorm, GELU,
pooling and biases), so T* sits 1.2 % above its rounded figure, within that figure's rounding interval.
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Cao et al., Strip-MLP: Efficient Token Interaction for Vision MLP, ICCV 2023"


def strip_mlp_arch(name: str, dim: int, depths: tuple[int, ...], image_size: int = 224, in_channels: int = 3,
                   num_classes: int = 1000, drop_path: float = 0.1) -> ArchConfig:
    """A Strip-MLP pyramid: patch-4 stem, widths ``dim * 2**i``, Strip and GRN mixers, cross-stage fusion."""
    stages = tuple(
        StageSpec(depth=depth, dim=dim * 2 ** i,
                  token_mixer=MixerSpec.of("strip"),
                  channel_mixer=MixerSpec.of("grn", channel_hidden_dim=3 * dim * 2 ** i, dw_kernel=7),
                  downsample="none" if i == 0 else "conv2x2", norm="none", drop_path=drop_path)
        for i, depth in enumerate(depths))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dim, bias=False, norm="none"),
                      head=HeadSpec(norm="batchnorm", pool="mean"), layout="pyramid",
                      cross_stage_fusion=True, name=name)


def _register(name: str, label: str, dim: int, depths: tuple[int, ...], reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return strip_mlp_arch(name, dim, depths, image_size, in_channels, num_classes)

    make.__doc__ = f"{name}: Strip-MLP-{label}, width {dim}, depths {list(depths)}."
    register_model(name, reported=reported, family="strip", paper=PAPER)(make)


_OFFICIAL = "official strip_mlp.py StripMLPNet parameter count at 224 / 1000 classes"


def _note(fv: float, pt: float) -> str:
    return (f"README MACs are ptflops counts rounded to 0.1G; on the official model ptflops 0.7.5 gives "
            f"{pt:.3f}G, fvcore {fv:.3f}G (this model: the same up to LSMM's pooling, which fvcore counts "
            "as adaptive_avg_pool2d there and not as mean here)")


_register("strip_mlp_t_star", "T* (Light Tiny)", 80, (2, 2, 6, 2),
          Reported(18_243_920, 2_500_000_000, f"{_OFFICIAL}; official README: 18M params, 2.5G FLOPs (MACs)",
                   top1=81.2, note=_note(2.531, 2.540)))
_register("strip_mlp_t", "T (Tiny)", 80, (2, 2, 12, 2),
          Reported(24_903_920, 3_700_000_000, f"{_OFFICIAL}; official README: 25M params, 3.7G FLOPs (MACs)",
                   top1=82.2, note=_note(3.665, 3.676)))
_register("strip_mlp_s", "S (Small)", 96, (2, 2, 18, 2),
          Reported(42_568_600, 6_800_000_000, f"{_OFFICIAL}; official README: 43M params, 6.8G FLOPs (MACs)",
                   top1=83.3, note=_note(6.828, 6.844)))
_register("strip_mlp_b", "B (Base)", 112, (2, 2, 18, 2),
          Reported(57_216_480, 9_200_000_000, f"{_OFFICIAL}; official README: 57M params, 9.2G FLOPs (MACs)",
                   top1=83.6, note=_note(9.214, 9.233)))
