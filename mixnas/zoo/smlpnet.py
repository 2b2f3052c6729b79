"""sMLPNet named models.

Paper: Tang et al., "Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?", AAAI 2022.
Official code: github.com/microsoft/SPACH, ``models/smlp.py`` (``sMLPNet``) and ``models/__init__.py``
(``smlpnet_tiny``: C=80, depths 2, 8, 14, 2; ``smlpnet_small``: C=96, 2, 10, 24, 2; ``smlpnet_base``:
C=112, 2, 10, 24, 2; alpha 3 everywhere). The SPACH README reports the ImageNet-1K numbers quoted below
(24M / 49M / 66M parameters, 5.0G / 10.3G / 14.0G "FLOPs" that are multiply-adds).

Architecture: 4x4 stride-4 patch stem without bias or norm; four stages of widths C, 2C, 4C, 8C, each later
one entered by a 2x2 stride-2 convolution without bias (``downsample: conv2x2``); blocks
``x + sMLP(x)`` (no norm before the token mixer: ``token_norm: none``; it starts with its own BatchNorm)
and ``x + MLP(LN(x))`` with a 3C GELU MLP with biases; BatchNorm, global mean pool, linear head. See
:mod:`mixnas.mixers.smlp`.

Deviations from the official code, none in structure or parameter count (the counts below are
``sMLPNet``'s own, and the official weights load one to one, with 1x1 convolutions reshaped):

* LayerNorm eps is mixnas' 1e-6 where the official ``nn.LayerNorm`` keeps PyTorch's 1e-5;
* stochastic depth: the official rate rises linearly over the blocks (0 to 0 / 0.2 / 0.3); here each stage
  uses one rate, the mean of the official rates of its blocks (training only);
* initialisation: the official model keeps PyTorch's defaults everywhere; here the channel MLP's and the
  head's ``nn.Linear`` layers are drawn truncated-normal (std 0.02) by the backbone; no pretrained weights
  are loaded.

Checked when this module was written: the official weights, loaded into this model (LayerNorm eps set to
1e-5), give the official logits (to 5e-7, on a small configuration), and fvcore counts the same MACs on both
models.

MACs at 224: fvcore counts 5.012 / 10.348 / 14.029 G, within 0.2 / 0.5 / 0.2 % of the README's 5.0 / 10.3 /
14.0 G (torchprofile counts 4.997 / 10.324 / 14.001 G on the official model: it counts BatchNorm at one MAC
per element where fvcore counts two, and LayerNorm at one where fvcore counts five).
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model
from mixnas.zoo.as_mlp import stage_drop_paths

PAPER = "Tang et al., Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?, AAAI 2022"


def smlpnet_arch(name: str, dim: int, depths: tuple[int, ...], image_size: int = 224, in_channels: int = 3,
                 num_classes: int = 1000, alpha: int = 3, drop_path: float = 0.0) -> ArchConfig:
    """An sMLPNet pyramid: patch-4 stem, widths ``dim * 2**i``, sMLP token mixers, LayerNorm-MLP channel mixers."""
    rates = stage_drop_paths(depths, drop_path)
    stages = tuple(
        StageSpec(depth=depth, dim=dim * 2 ** i,
                  token_mixer=MixerSpec.of("smlp"),
                  channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=alpha * dim * 2 ** i),
                  downsample="none" if i == 0 else "conv2x2", norm="layernorm", token_norm="none",
                  drop_path=rates[i])
        for i, depth in enumerate(depths))
    return ArchConfig(stages=stages, input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dim, bias=False, norm="none"),
                      head=HeadSpec(norm="batchnorm", pool="mean"), layout="pyramid", name=name)


_OFFICIAL = "official smlp.py sMLPNet parameter count at 224 / 1000 classes"
_NOTE = "README FLOPs are multiply-adds printed to 0.1G; fvcore counts {:.3f}G on the official model and on this one"
# name, label, width, depths, drop path, exact params, README GFLOPs, README params (M), top-1, fvcore GMACs
_VARIANTS = (
    ("smlpnet_t", "T", 80, (2, 8, 14, 2), 0.0, 24_123_584, "5.0", 24, 81.9, 5.012),
    ("smlpnet_s", "S", 96, (2, 10, 24, 2), 0.2, 48_558_136, "10.3", 49, 83.1, 10.348),
    ("smlpnet_b", "B", 112, (2, 10, 24, 2), 0.3, 65_880_408, "14.0", 66, 83.4, 14.029),
)


def _register(name: str, label: str, dim: int, depths: tuple[int, ...], drop_path: float,
              reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return smlpnet_arch(name, dim, depths, image_size, in_channels, num_classes, drop_path=drop_path)

    make.__doc__ = f"{name}: sMLPNet-{label}, width {dim}, depths {list(depths)}, alpha 3."
    register_model(name, reported=reported, family="smlp", paper=PAPER)(make)


for _name, _label, _dim, _depths, _dp, _params, _gflops, _mparams, _top1, _fv in _VARIANTS:
    _register(_name, _label, _dim, _depths, _dp,
              Reported(_params, round(float(_gflops) * 1e9),
                       f"{_OFFICIAL}; SPACH README: {_mparams}M params, {_gflops}G FLOPs",
                       top1=_top1, note=_NOTE.format(_fv)))
