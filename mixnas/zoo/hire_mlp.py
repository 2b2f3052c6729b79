"""Hire-MLP named models.

Paper: Guo et al., "Hire-MLP: Vision MLP via Hierarchical Rearrangement", CVPR 2022 (Table 1: Tiny /
Small / Base / Large).
Official code: github.com/ggjy/Hire-Wave-MLP.pytorch, ``mlp_based/hire_mlp.py`` (``HireMLPNet``,
``hire_mlp_tiny`` ... ``hire_mlp_large``). Its README reports the ImageNet-1K numbers quoted below (18M /
33M / 58M / 96M parameters; 2.1G / 4.2G / 8.1G / 13.4G "FLOPs" that are multiply-adds).

Architecture: an overlapping stem (7x7 stride-4 convolution with padding 2 and bias, BatchNorm, ReLU);
four stages of widths 64, 128, 320, 512 (Large: 96, 192, 384, 768), each later one entered by a 3x3
stride-2 convolution with bias, BatchNorm and ReLU (``downsample: conv3x3``); pre-norm blocks
``x + Hire(BN(x))``, ``x + MLP(BN(x))`` with a 4C GELU MLP with biases; BatchNorm, global mean pool,
linear head. Per stage: region sizes 4, 3, 3, 2; shift steps 2, 2, 1, 1; shift strides 2, 2, 3, 2. See
:mod:`mixnas.mixers.hire`.

Deviations from the official code, none in structure or parameter count (the counts below are
``HireMLPNet``'s own, and the official weights load one to one with 1x1 convolutions reshaped to linear
weights):

* stochastic depth: the official rate (a command-line argument of its training script, not part of the
  model definitions) is not reproduced; the named models have none;
* the stem's and the downsampling layers' convolutions keep PyTorch's default initialisation where the
  official code draws them truncated-normal (std 0.02); no pretrained weights are loaded.

Checked when this module was written: the official weights, loaded into this model, give the official
logits (to 5e-7, on a small configuration), and fvcore counts the same MACs on both models.

MACs at 224: fvcore counts 2.150 / 4.242 / 8.128 / 13.446 G; torchprofile (the counter the official
repository lists in its requirements) counts 2.149 / 4.241 / 8.127 / 13.444 G on the official model (it
counts a BatchNorm at one MAC per element where fvcore counts two). The README's 2.1 / 4.2 / 8.1 / 13.4 G
are the torchprofile counts rounded to 0.1 G. Hire-MLP-Tiny therefore sits 2.4 % above its printed
figure, inside that figure's rounding interval [2.05, 2.15) G (the registry's tolerance for a printed
figure), but not within 1 % of it: a difference of rounding, not of the model.
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Guo et al., Hire-MLP: Vision MLP via Hierarchical Rearrangement, CVPR 2022"
REGION_SIZES = (4, 3, 3, 2)
SHIFT_STEPS = (2, 2, 1, 1)
SHIFT_STRIDES = (2, 2, 3, 2)


def hire_mlp_arch(name: str, dims: tuple[int, ...], depths: tuple[int, ...], image_size: int = 224,
                  in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """A Hire-MLP pyramid: overlapping 7x7 stem, 3x3 stride-2 downsampling, BatchNorm, official per-stage knobs."""
    stages = tuple(
        StageSpec(depth=depth, dim=dim,
                  token_mixer=MixerSpec.of("hire", region_size=REGION_SIZES[i], shift_step=SHIFT_STEPS[i],
                                           shift_stride=SHIFT_STRIDES[i]),
                  channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=4 * dim),
                  downsample="none" if i == 0 else "conv3x3", norm="batchnorm")
        for i, (dim, depth) in enumerate(zip(dims, depths)))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dims[0], bias=True, norm="batchnorm", kernel_size=7,
                                    padding=2, act="relu"),
                      head=HeadSpec(norm="batchnorm", pool="mean"), layout="pyramid", name=name)


def _register(name: str, label: str, dims: tuple[int, ...], depths: tuple[int, ...], reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return hire_mlp_arch(name, dims, depths, image_size, in_channels, num_classes)

    make.__doc__ = f"{name}: Hire-MLP-{label}, widths {list(dims)}, depths {list(depths)}."
    register_model(name, reported=reported, family="hire", paper=PAPER)(make)


_OFFICIAL = "official hire_mlp.py HireMLPNet parameter count at 224 / 1000 classes"
_NOTE = ("README FLOPs are torchprofile multiply-adds ({:.3f}G on the official model) rounded to 0.1G; fvcore "
         "counts {:.3f}G on the official model and on this one")

_SMALL, _LARGE = (64, 128, 320, 512), (96, 192, 384, 768)
# name, label, widths, depths, exact params, README GFLOPs, README params (M), top-1, torchprofile / fvcore GMACs
_VARIANTS = (
    ("hire_mlp_t", "Tiny", _SMALL, (2, 2, 4, 2), 18_041_672, "2.1", 18, 79.7, 2.149, 2.150),
    ("hire_mlp_s", "Small", _SMALL, (3, 4, 10, 3), 33_113_848, "4.2", 33, 82.1, 4.241, 4.242),
    ("hire_mlp_b", "Base", _SMALL, (4, 6, 24, 3), 58_226_856, "8.1", 58, 83.2, 8.127, 8.128),
    ("hire_mlp_l", "Large", _LARGE, (4, 6, 24, 3), 95_723_944, "13.4", 96, 83.8, 13.444, 13.446),
)
for _name, _label, _dims, _depths, _params, _gflops, _mparams, _top1, _tp, _fv in _VARIANTS:
    _register(_name, _label, _dims, _depths,
              Reported(_params, round(float(_gflops) * 1e9),
                       f"{_OFFICIAL}; official README: {_mparams}M params, {_gflops}G FLOPs",
                       top1=_top1, note=_NOTE.format(_tp, _fv)))
