"""AS-MLP named models.

Paper: Lian, Yu, Sun and Gao, "AS-MLP: An Axial Shifted MLP Architecture for Vision", ICLR 2022 (Sec. 3.3:
T C=96 {2,2,6,2}, S C=96 {2,2,18,2}, B C=128 {2,2,18,2}; shift size 5).
Official code: github.com/svip-lab/AS-MLP, ``models/as_mlp.py`` (``AS_MLP``) with
``configs/as_{tiny,small,base}_patch4_shift5_224.yaml``. Its README reports the ImageNet-1K numbers quoted
below (28M / 50M / 88M parameters, 4.4G / 8.5G / 15.2G "FLOPs" that are multiply-adds).

Architecture (every norm is the official ``MyNorm``, GroupNorm with one group, mixnas ``groupnorm``):
4x4 stride-4 patch stem with bias and GroupNorm; four stages of widths C, 2C, 4C, 8C; later stages are
entered by Swin patch merging (2x2 neighbours concatenated, GroupNorm over 4C, 1x1 conv without bias:
``downsample: merge2x2``); pre-norm blocks ``x + AS(GN(x))``, ``x + MLP(GN(x))`` with a 4C GELU MLP with
biases; final GroupNorm, global mean pool, linear head. See :mod:`mixnas.mixers.asmlp`.

Deviations from the official code, none in structure or parameter count (the counts below are the
official model's, 28,282,696 / 49,594,696 / 87,752,808, from ``AS_MLP`` itself; the official weights load
one to one with 1x1 convolutions reshaped to linear weights):

* stochastic depth: the official rate rises linearly over the blocks (0 to 0.2 / 0.3 / 0.5); here each
  stage uses one rate, the mean of the official rates of its blocks (training only);
* the patch merging of stage ``i`` belongs to stage ``i + 1`` here (it is the end of stage ``i`` in the
  official ``BasicLayer``), so the per-stage complexity rows move it by one stage;
* initialisation: the channel MLP's 1x1 convolutions are ``nn.Linear`` layers that the backbone
  initialises truncated-normal (std 0.02), where the official code keeps PyTorch's conv default; no
  pretrained weights are loaded.

Checked when this module was written: the official weights, loaded into this model, give the official
logits (to 5e-7, on a small configuration), and fvcore counts the same MACs on both models.

MACs at 224: fvcore counts 4.383 / 8.563 / 15.194 G. The README's 4.4 / 8.5 / 15.2 G are within
0.4 / 0.8 / 0.1 % of them; the official ``flops()`` method gives 4.359 / 8.525 / 15.143 G (it counts each
GroupNorm at one MAC per element where fvcore counts five, and pooling differently), so the README figures
are not exactly either count rounded.
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Lian et al., AS-MLP: An Axial Shifted MLP Architecture for Vision, ICLR 2022"


def stage_drop_paths(depths: tuple[int, ...], rate: float) -> list[float]:
    """Per stage, the mean of the official linearly rising per-block rates (0 to ``rate``)."""
    total = sum(depths)
    per_block = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(round(sum(per_block[start:start + depth]) / depth, 6))
        start += depth
    return out


def as_mlp_arch(name: str, dim: int, depths: tuple[int, ...], image_size: int = 224, in_channels: int = 3,
                num_classes: int = 1000, shift_size: int = 5, drop_path: float = 0.2) -> ArchConfig:
    """An AS-MLP pyramid: patch-4 stem, widths ``dim * 2**i``, axial-shift and MLP mixers, GroupNorm."""
    rates = stage_drop_paths(depths, drop_path)
    stages = tuple(
        StageSpec(depth=depth, dim=dim * 2 ** i,
                  token_mixer=MixerSpec.of("asmlp", shift_size=shift_size),
                  channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=4 * dim * 2 ** i),
                  downsample="none" if i == 0 else "merge2x2", norm="groupnorm", drop_path=rates[i])
        for i, depth in enumerate(depths))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dim, bias=True, norm="groupnorm"),
                      head=HeadSpec(norm="groupnorm", pool="mean"), layout="pyramid", name=name)


def _register(name: str, label: str, dim: int, depths: tuple[int, ...], drop_path: float,
              reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return as_mlp_arch(name, dim, depths, image_size, in_channels, num_classes, drop_path=drop_path)

    make.__doc__ = f"{name}: AS-MLP-{label}, width {dim}, depths {list(depths)}, shift size 5."
    register_model(name, reported=reported, family="asmlp", paper=PAPER)(make)


_OFFICIAL = "official as_mlp.py AS_MLP parameter count at 224 / 1000 classes"
_NOTE = "README FLOPs are multiply-adds printed to 0.1G; fvcore counts {:.3f}G on the official model and on this one"

_register("asmlp_t", "T", 96, (2, 2, 6, 2), 0.2,
          Reported(28_282_696, 4_400_000_000, f"{_OFFICIAL}; official README: 28M params, 4.4G FLOPs",
                   top1=81.3, note=_NOTE.format(4.383)))
_register("asmlp_s", "S", 96, (2, 2, 18, 2), 0.3,
          Reported(49_594_696, 8_500_000_000, f"{_OFFICIAL}; official README: 50M params, 8.5G FLOPs",
                   top1=83.1, note=_NOTE.format(8.563)))
_register("asmlp_b", "B", 128, (2, 2, 18, 2), 0.5,
          Reported(87_752_808, 15_200_000_000, f"{_OFFICIAL}; official README: 88M params, 15.2G FLOPs",
                   top1=83.3, note=_NOTE.format(15.194)))
