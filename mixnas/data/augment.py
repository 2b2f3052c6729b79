"""The Strip-MLP / DeiT training augmentations as batched tensor ops: RandAugment, random resized crop,
random erasing, mixup / cutmix with soft targets, and the resize-then-centre-crop evaluation rule.

Reference: the official Strip-MLP code (github.com/Med-Process/Strip_MLP, built on Swin-Transformer's
``main.py`` and ``config.py``: ``AUG.AUTO_AUGMENT = 'rand-m9-mstd0.5-inc1'``, ``REPROB 0.25`` /
``REMODE 'pixel'`` / ``RECOUNT 1``, ``MIXUP 0.8`` / ``CUTMIX 1.0`` / ``MIXUP_PROB 1.0`` / ``SWITCH_PROB 0.5`` /
``MODE 'batch'``, label smoothing 0.1, ``TEST.CROP``), which takes these pieces from timm 0.4
(``create_transform`` -> ``transforms_imagenet_train``, ``auto_augment.rand_augment_transform``,
``random_erasing.RandomErasing``, ``mixup.Mixup``). timm is the reference implementation here: the random
draws, the level-to-argument rules and the PIL semantics of each op follow it. The training pipeline is
``RandomResizedCrop -> horizontal flip -> RandAugment`` on uint8, then normalisation, then random erasing,
then mixup / cutmix of the whole batch (see :class:`mixnas.data.loader.BatchLoader`).

Everything random comes from the ``torch.Generator`` passed in (the loader reseeds it per epoch); the global
RNGs of torch, numpy and ``random`` are never touched. Beta draws (mixup's lambda) come from a numpy
``Generator`` seeded from that torch generator.

Deviations from timm / the official code:

* The random resized crop and the evaluation resize are bicubic and antialiased like PIL's ``BICUBIC``
  (torch's uint8 kernel on CPU; it agrees with PIL to one level; on CUDA the same kernel runs in float).
* The geometric RandAugment ops (Rotate, ShearX/Y, TranslateX/YRel) resample bilinearly with ``grid_sample``
  where the official config asks PIL for bicubic; every output pixel whose source point lies outside the
  image gets the fill (PIL's rule), edge pixels are clamped.
* The geometric fill is the dataset mean (``round(255 * mean)`` per channel, what timm's ``create_transform``
  passes as ``img_mean``), computed from this dataset's training split rather than ImageNet's constants;
  called directly, :class:`RandAugment` fills with 128.
* Enhance ops (Color, Contrast, Brightness, Sharpness) blend in float and truncate as PIL does; they match
  PIL to one level (AutoContrast, Equalize, Posterize, Solarize and a 90 degree Rotate match exactly; see
  ``tests/data/test_augment.py``).
* ``mstd`` is timm 0.4's: a per-op gaussian around the magnitude, clipped to [0, 10] (``mstdinf``: uniform in
  [0, magnitude]). timm's ``inc0`` quirk (``bool('0')`` is True, so ``inc0`` also picked the increasing
  ops) is not reproduced: ``inc0`` selects the original op set. The per-op weights (``-w``) and the ``mmax``
  section of later timm are not supported.
* The draws come from a torch generator, batched, so the images differ from timm's for any seed; their
  distributions are timm's.
* Mixup in ``batch`` mode mixes each image with the batch in reverse order (timm's ``x.flip(0)``); timm
  asserts an even batch size, here an odd last batch pairs its middle image with itself.

Throughput of RandAugment ``'rand-m9-mstd0.5-inc1'`` after the random resized crop and flip, on a uint8
batch of 64, one thread of a 2-core CPU shared with other jobs (``PYTHONPATH=. python -m
mixnas.data.augment``): 64x3x32x32 about 7,300 images/s; 64x3x224x224 about 550 images/s. RandAugment runs
each op once per layer on the images that drew it (a Python loop over the 15 ops, not over the images);
the resized crop is one resize call per image.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mixnas.errors import MixnasError

MAX_LEVEL = 10.0
RAND_AUGMENT_FORM = ("'rand-m9-mstd0.5-inc1': 'rand' followed by any of -m<magnitude 0-10>, -n<ops per image>, "
                     "-mstd<gaussian std of the magnitude, or inf>, -inc<0|1> (the increasing-severity op set)")

# timm 0.4's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in timm's order.
RAND_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                       "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                       "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                       "TranslateYRel")


# -- geometry -------------------------------------------------------------------------------------------------


def _affine(images: Tensor, theta: Tensor, fill: Tensor) -> Tensor:
    """Resample ``(K, C, H, W)`` uint8 images through per-image ``(K, 2, 3)`` maps ``theta``.

    ``theta`` maps an output point to its source point in pixel coordinates whose pixel centres sit at
    ``i + 0.5`` (PIL's convention). Sources outside the image get ``fill`` (per channel).
    """
    k, c, h, w = images.shape
    dev = images.device
    ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1)  # (H, W, 3)
    src = torch.einsum("hwj,kij->khwi", base, theta.to(dev, torch.float32))  # (K, H, W, 2), (x, y)
    grid = src / torch.tensor([w / 2.0, h / 2.0], device=dev) - 1.0
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((src[..., 0] >= 0) & (src[..., 0] < w) & (src[..., 1] >= 0) & (src[..., 1] < h)).unsqueeze(1)
    out = torch.where(inside, out, fill.to(dev, torch.float32).view(1, c, 1, 1))
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _theta(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    """PIL's affine ``data`` (a, b, c, d, e, f): source = (a x + b y + c, d x + e y + f), batched."""
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)


def _rotate(x: Tensor, degrees: Tensor, fill: Tensor) -> Tensor:
    """Counter-clockwise about the centre, as ``PIL.Image.rotate``."""
    h, w = x.shape[-2:]
    ang = -torch.deg2rad(degrees.double())
    cos, sin = torch.cos(ang), torch.sin(ang)
    cx, cy = w / 2.0, h / 2.0
    theta = _theta(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
    return _affine(x, theta.float(), fill)


def _shear(x: Tensor, factor: Tensor, fill: Tensor, axis: str) -> Tensor:
    one, zero = torch.ones_like(factor), torch.zeros_like(factor)
    theta = (_theta(one, factor, zero, zero, one, zero) if axis == "x"
             else _theta(one, zero, zero, factor, one, zero))
    return _affine(x, theta, fill)


def _translate_rel(x: Tensor, pct: Tensor, fill: Tensor, axis: str) -> Tensor:
    h, w = x.shape[-2:]
    one, zero = torch.ones_like(pct), torch.zeros_like(pct)
    theta = (_theta(one, zero, pct * w, zero, one, zero) if axis == "x"
             else _theta(one, zero, zero, zero, one, pct * h))
    return _affine(x, theta, fill)


# -- colour ---------------------------------------------------------------------------------------------------


def _per_image(arg: Tensor, x: Tensor) -> Tensor:
    return arg.to(x.device).view(-1, *([1] * (x.dim() - 1)))


def _lut(x: Tensor, lut: Tensor) -> Tensor:
    """Apply per-(image, channel) lookup tables ``(K, C, 256)`` to ``(K, C, H, W)`` uint8."""
    k, c, h, w = x.shape
    out = lut.reshape(k * c, 256).gather(1, x.reshape(k * c, h * w).long())
    return out.reshape(k, c, h, w).clamp_(0, 255).to(torch.uint8)


def _auto_contrast(x: Tensor, _arg: Tensor, _fill: Tensor) -> Tensor:
    """``ImageOps.autocontrast`` (cutoff 0): each channel's [min, max] stretched to [0, 255]."""
    lo = x.amin((2, 3)).double().unsqueeze(-1)  # (K, C, 1)
    hi = x.amax((2, 3)).double().unsqueeze(-1)
    scale = 255.0 / (hi - lo).clamp(min=1)
    ix = torch.arange(256, device=x.device, dtype=torch.float64)
    lut = torch.where(hi > lo, (ix * scale - lo * scale).clamp(0, 255), ix)
    return _lut(x, lut.floor().long())


def _equalize(x: Tensor, _arg: Tensor, _fill: Tensor) -> Tensor:
    """``ImageOps.equalize``, per channel."""
    k, c, h, w = x.shape
    flat = x.reshape(k * c, h * w).long()
    hist = torch.zeros(k * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, flat, torch.ones_like(flat))
    last = (hist > 0).long().mul(torch.arange(256, device=x.device)).argmax(1, keepdim=True)
    step = (h * w - hist.gather(1, last)) // 255  # (K*C, 1)
    before = hist.cumsum(1) - hist  # pixels below each value
    lut = (step // 2 + before) // step.clamp(min=1)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device).expand_as(lut))
    return _lut(x, lut.view(k, c, 256))


def _invert(x: Tensor, _arg: Tensor, _fill: Tensor) -> Tensor:
    return 255 - x


def _posterize(x: Tensor, bits: Tensor, _fill: Tensor) -> Tensor:
    """Keep the top ``bits`` bits (8 or more: unchanged)."""
    keep = bits.long().clamp(0, 8)
    mask = (255 - ((1 << (8 - keep)) - 1)).to(torch.uint8)
    return x & _per_image(mask, x)


def _solarize(x: Tensor, threshold: Tensor, _fill: Tensor) -> Tensor:
    """Invert every value at or above ``threshold``."""
    return torch.where(x.to(torch.int16) >= _per_image(threshold.to(torch.int16), x), 255 - x, x)


def _solarize_add(x: Tensor, add: Tensor, _fill: Tensor) -> Tensor:
    """Add ``add`` to every value below 128 (clipped at 255), as timm's ``solarize_add``."""
    added = (x.to(torch.int16) + _per_image(add.to(torch.int16), x)).clamp_(max=255).to(torch.uint8)
    return torch.where(x < 128, added, x)


def _grey(x: Tensor) -> Tensor:
    """PIL's ``convert('L')`` (ITU-R 601-2 luma, integer arithmetic); a 1-channel image is its own grey."""
    if x.shape[1] == 1:
        return x.long()
    r, g, b = x.long().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).unsqueeze(1)


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """``Image.blend(degenerate, x, factor)``: truncated and clipped, as PIL's ImageEnhance does."""
    d = degenerate.float()
    out = d + _per_image(factor.float(), x) * (x.float() - d)
    return out.floor_().clamp_(0, 255).to(torch.uint8)


def _color(x: Tensor, factor: Tensor, _fill: Tensor) -> Tensor:
    return _blend(_grey(x).expand_as(x), x, factor)


def _contrast(x: Tensor, factor: Tensor, _fill: Tensor) -> Tensor:
    mean = (_grey(x).double().mean((1, 2, 3), keepdim=True) + 0.5).floor()
    return _blend(mean.expand_as(x), x, factor)


def _brightness(x: Tensor, factor: Tensor, _fill: Tensor) -> Tensor:
    return _blend(torch.zeros_like(x), x, factor)


def _sharpness(x: Tensor, factor: Tensor, _fill: Tensor) -> Tensor:
    """Blend with PIL's SMOOTH filter (3x3, centre 5, /13); the one-pixel border keeps its values."""
    c = x.shape[1]
    kernel = torch.ones(c, 1, 3, 3, device=x.device)
    kernel[:, :, 1, 1] = 5.0
    smooth = (F.conv2d(x.float(), kernel / 13.0, groups=c) + 0.5).floor_()
    degenerate = x.float().clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, factor)


# -- RandAugment ----------------------------------------------------------------------------------------------

OpFn = Callable[[Tensor, Tensor, Tensor], Tensor]
LevelFn = Callable[[Tensor, Tensor], Tensor]  # (level in [0, 10], negate mask) -> the op's argument


def _signed(scale: float) -> LevelFn:
    return lambda level, neg: torch.where(neg, -1.0, 1.0) * level / MAX_LEVEL * scale


def _enhance(level: Tensor, _neg: Tensor) -> Tensor:
    return level / MAX_LEVEL * 1.8 + 0.1


def _enhance_increasing(level: Tensor, neg: Tensor) -> Tensor:
    return 1.0 + _signed(0.9)(level, neg)


def _floor_scaled(scale: float, start: float = 0.0, sign: float = 1.0) -> LevelFn:
    """``start + sign * int(level / 10 * scale)``: timm's integer-valued level rules."""
    return lambda level, _neg: start + sign * torch.floor(level / MAX_LEVEL * scale)


def _none(level: Tensor, _neg: Tensor) -> Tensor:
    return torch.zeros_like(level)


# name -> (op on a (K, C, H, W) uint8 batch with one argument per image, timm's level-to-argument rule)
OPS: dict[str, tuple[OpFn, LevelFn]] = {
    "AutoContrast": (_auto_contrast, _none),
    "Equalize": (_equalize, _none),
    "Invert": (_invert, _none),
    "Rotate": (_rotate, _signed(30.0)),
    "Posterize": (_posterize, _floor_scaled(4)),
    "PosterizeIncreasing": (_posterize, _floor_scaled(4, start=4, sign=-1)),
    "Solarize": (_solarize, _floor_scaled(256)),
    "SolarizeIncreasing": (_solarize, _floor_scaled(256, start=256, sign=-1)),
    "SolarizeAdd": (_solarize_add, _floor_scaled(110)),
    "Color": (_color, _enhance),
    "ColorIncreasing": (_color, _enhance_increasing),
    "Contrast": (_contrast, _enhance),
    "ContrastIncreasing": (_contrast, _enhance_increasing),
    "Brightness": (_brightness, _enhance),
    "BrightnessIncreasing": (_brightness, _enhance_increasing),
    "Sharpness": (_sharpness, _enhance),
    "SharpnessIncreasing": (_sharpness, _enhance_increasing),
    "ShearX": (lambda x, a, f: _shear(x, a, f, "x"), _signed(0.3)),
    "ShearY": (lambda x, a, f: _shear(x, a, f, "y"), _signed(0.3)),
    "TranslateXRel": (lambda x, a, f: _translate_rel(x, a, f, "x"), _signed(0.45)),
    "TranslateYRel": (lambda x, a, f: _translate_rel(x, a, f, "y"), _signed(0.45)),
}


def apply_op(name: str, images: Tensor, arg: float | Tensor = 0.0, fill: Sequence[int] | int = 128) -> Tensor:
    """Apply one RandAugment op with its argument (degrees, bits, threshold, factor ...) to every image."""
    fn, _ = OPS[name]
    arg = torch.as_tensor(arg, dtype=torch.float32).expand(len(images)).clone()
    return fn(images, arg, _fill_tensor(fill, images.shape[1]))


def _fill_tensor(fill: Sequence[int] | int, channels: int) -> Tensor:
    t = torch.as_tensor(fill, dtype=torch.float32).flatten()
    return t.expand(channels) if t.numel() == 1 else t


@dataclass(frozen=True)
class RandAugment:
    """timm's RandAugment: ``num_ops`` ops per image drawn uniformly (with replacement), each applied with
    probability ``prob`` at a magnitude drawn per op around ``magnitude`` (0-10) with ``magnitude_std``."""

    magnitude: float = 10.0
    num_ops: int = 2
    magnitude_std: float = 0.0
    increasing: bool = False
    prob: float = 0.5
    fill: tuple[int, ...] = (128,)

    @property
    def ops(self) -> tuple[str, ...]:
        return RAND_INCREASING_OPS if self.increasing else RAND_OPS

    @classmethod
    def parse(cls, spec: str, fill: Sequence[int] = (128,)) -> RandAugment:
        """Parse timm's ``'rand-m9-mstd0.5-inc1'`` form."""
        def bad(why: str) -> MixnasError:
            return MixnasError(f"rand_augment {spec!r}: {why}; expected the form {RAND_AUGMENT_FORM}")

        if not isinstance(spec, str):
            raise bad("not a string")
        parts = spec.split("-")
        if parts[0] != "rand":
            raise bad("must start with 'rand'")
        kw: dict = {}
        keys = {"m": "magnitude", "n": "num_ops", "mstd": "magnitude_std", "inc": "increasing"}
        for part in parts[1:]:
            m = re.fullmatch(r"(mstd|inc|m|n)(inf|\d+(?:\.\d+)?)", part)
            if m is None:
                raise bad(f"unknown section {part!r}")
            key, val = keys[m.group(1)], m.group(2)
            if key in kw:
                raise bad(f"{m.group(1)} given twice")
            if val == "inf" and key != "magnitude_std":
                raise bad(f"{m.group(1)} cannot be inf")
            if key == "num_ops":
                kw[key] = int(float(val))
            elif key == "increasing":
                if val not in ("0", "1"):
                    raise bad("inc must be 0 or 1")
                kw[key] = val == "1"
            else:
                kw[key] = float(val)
        if not 0 <= kw.get("magnitude", 0) <= MAX_LEVEL:
            raise bad("the magnitude must be in [0, 10]")
        if kw.get("num_ops", 1) < 1:
            raise bad("n must be at least 1")
        return cls(**kw, fill=tuple(int(v) for v in fill))

    def __call__(self, images: Tensor, gen: torch.Generator) -> Tensor:
        """Augment a ``(B, C, H, W)`` uint8 batch; ops run batched over the images that drew them."""
        n, b = self.num_ops, len(images)
        ops = self.ops
        choice = torch.randint(len(ops), (n, b), generator=gen)
        apply = torch.rand(n, b, generator=gen) < self.prob
        if math.isinf(self.magnitude_std):
            level = torch.rand(n, b, generator=gen) * self.magnitude
        else:
            level = self.magnitude + self.magnitude_std * torch.randn(n, b, generator=gen)
        level = level.clamp(0.0, MAX_LEVEL)
        negate = torch.rand(n, b, generator=gen) < 0.5
        fill = _fill_tensor(self.fill, images.shape[1])
        out = images.clone()
        for layer in range(n):
            for k, name in enumerate(ops):
                idx = torch.nonzero(apply[layer] & (choice[layer] == k)).flatten()
                if len(idx) == 0:
                    continue
                fn, level_fn = OPS[name]
                arg = level_fn(level[layer, idx], negate[layer, idx])
                dev_idx = idx.to(images.device)
                out[dev_idx] = fn(out[dev_idx], arg, fill)
        return out


# -- crops ----------------------------------------------------------------------------------------------------


def _resize(images: Tensor, size: int) -> Tensor:
    """Bicubic resize of a ``(K, C, h, w)`` uint8 batch to ``size`` square, antialiased (PIL's ``BICUBIC``:
    on CPU torch's uint8 kernel agrees with PIL to one level)."""
    if images.device.type == "cpu":
        return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    out = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _random_boxes(b: int, h: int, w: int, area: tuple[float, float], aspect: tuple[float, float],
                  gen: torch.Generator, fits: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, ...]:
    """The first of 10 tries per image that ``fits(height, width)``: an ``area`` share of the image with a
    log-uniform width / height ``aspect``, at a uniform position. Returns (top, left, height, width, found),
    float ``(B,)`` each (a row without a fit holds its last try, ``found`` False)."""
    target = torch.empty(b, 10).uniform_(*area, generator=gen) * (h * w)
    ar = torch.exp(torch.empty(b, 10).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=gen))
    bw, bh = torch.sqrt(target * ar).round(), torch.sqrt(target / ar).round()
    ok = fits(bh, bw)
    first = ok.long().argmax(1, keepdim=True)
    bh, bw = bh.gather(1, first).squeeze(1), bw.gather(1, first).squeeze(1)
    u = torch.rand(2, b, generator=gen)
    return torch.floor(u[0] * (h - bh + 1)), torch.floor(u[1] * (w - bw + 1)), bh, bw, ok.any(1)


def crop_boxes(b: int, h: int, w: int, gen: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """RandomResizedCrop's boxes ``(B, 4)`` as (top, left, height, width), as torchvision's ``get_params``.

    Up to 10 tries of an area share in ``scale`` and a log-uniform aspect ratio in ``ratio``; the first box
    that fits is used, else the centre crop with its ratio clamped into ``ratio``.
    """
    top, left, ch, cw, found = _random_boxes(
        b, h, w, scale, ratio, gen, lambda bh, bw: (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h))
    if not bool(found.all()):
        if w / h < ratio[0]:
            fw, fh = w, round(w / ratio[0])
        elif w / h > ratio[1]:
            fw, fh = round(h * ratio[1]), h
        else:
            fw, fh = w, h
        cw, ch = torch.where(found, cw, float(fw)), torch.where(found, ch, float(fh))
        top = torch.where(found, top, float((h - fh) // 2))
        left = torch.where(found, left, float((w - fw) // 2))
    return torch.stack([top, left, ch, cw], 1).long()


def random_resized_crop(images: Tensor, gen: torch.Generator, size: int | None = None,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """timm's RandomResizedCropAndInterpolation (bicubic) for a ``(B, C, H, W)`` uint8 batch: one box per
    image from :func:`crop_boxes`, resized to ``size`` (default: the input's). One resize call per image."""
    b, c, h, w = images.shape
    size = size or h
    out = torch.empty(b, c, size, size, dtype=torch.uint8, device=images.device)
    for i, (top, left, ch, cw) in enumerate(crop_boxes(b, h, w, gen, scale, ratio).tolist()):
        out[i] = _resize(images[i:i + 1, :, top:top + ch, left:left + cw], size)[0]
    return out


def eval_resize_crop(images: Tensor, crop_pct: float) -> Tensor:
    """The evaluation rule: resize to ``floor(size / crop_pct)`` (256 for 224 at 0.875), centre-crop ``size``.

    ``(B, C, H, W)`` uint8 in and out, ``H == W == size``.
    """
    size = images.shape[-1]
    scale = int(math.floor(size / crop_pct + 1e-9))
    if scale == size:
        return images
    top = int(round((scale - size) / 2.0))
    return _resize(images, scale)[:, :, top:top + size, top:top + size].contiguous()


# -- after normalisation ----------------------------------------------------------------------------------------


def random_erasing(x: Tensor, prob: float, gen: torch.Generator, area: tuple[float, float] = (0.02, 1 / 3),
                   aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> Tensor:
    """timm's RandomErasing, mode 'pixel', one box: with probability ``prob`` per image, a box of
    ``area`` share and log-uniform ``aspect`` (10 tries to fit) is replaced by standard normal noise. (timm
    reads the aspect as height / width, here as width / height: over the symmetric log range the same.)

    ``x`` is the normalised float batch; a new tensor is returned.
    """
    b, c, h, w = x.shape
    erase = torch.rand(b, generator=gen) < prob
    top, left, bh, bw, found = _random_boxes(b, h, w, area, aspect, gen, lambda bh, bw: (bw < w) & (bh < h))
    erase &= found
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device, x.dtype)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    box = ((rows >= top.view(b, 1, 1)) & (rows < (top + bh).view(b, 1, 1))
           & (cols >= left.view(b, 1, 1)) & (cols < (left + bw).view(b, 1, 1)) & erase.view(b, 1, 1))
    return torch.where(box.unsqueeze(1).to(x.device), noise, x)


@dataclass(frozen=True)
class Mixup:
    """timm's ``Mixup`` in 'batch' mode: one lambda per batch, mixup or cutmix (``switch_prob`` picks cutmix
    when both are on), each image mixed with the batch reversed; targets are one-hot with
    ``label_smoothing`` folded in (off value ``smoothing / K``), mixed with the same lambda. The cutmix lambda
    is corrected to the share of the image the clipped box leaves."""

    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    prob: float = 1.0
    label_smoothing: float = 0.1

    def targets(self, y: Tensor, lam: float) -> Tensor:
        off = self.label_smoothing / self.num_classes
        on = 1.0 - self.label_smoothing + off
        one_hot = torch.full((len(y), self.num_classes), off, device=y.device).scatter_(1, y.view(-1, 1), on)
        return one_hot * lam + one_hot.flip(0) * (1.0 - lam)

    def __call__(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, float]:
        """``(mixed x, soft targets (B, K), lambda)``; ``x`` is not modified."""
        u = torch.rand(2, generator=gen)
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen))
        lam, cutmix = 1.0, False
        if (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and float(u[0]) < self.prob:
            if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
                cutmix = float(u[1]) < self.switch_prob
            else:
                cutmix = self.cutmix_alpha > 0
            alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
            lam = float(np.random.default_rng(seed).beta(alpha, alpha))
        if lam == 1.0:
            return x, self.targets(y, 1.0), 1.0
        if cutmix:
            x, lam = cutmix_batch(x, lam, gen)
        else:
            x = x * lam + x.flip(0) * (1.0 - lam)
        return x, self.targets(y, lam), lam


def cutmix_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox``: a box of side ``sqrt(1 - lam)`` times the image's, centred uniformly, clipped."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    return (min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h),
            min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w))


def cutmix_batch(x: Tensor, lam: float, gen: torch.Generator) -> tuple[Tensor, float]:
    """Paste the reversed batch's box into every image; lambda becomes the kept share of the image."""
    h, w = x.shape[-2:]
    yl, yh, xl, xh = cutmix_box(h, w, lam, gen)
    out = x.clone()
    out[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
    return out, 1.0 - (yh - yl) * (xh - xl) / float(h * w)


def _throughput() -> None:  # pragma: no cover - the numbers in the module docstring
    import time

    torch.set_num_threads(1)
    ra = RandAugment.parse("rand-m9-mstd0.5-inc1", fill=(124, 116, 104))
    for size in (32, 224):
        x = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8)
        gen = torch.Generator().manual_seed(0)
        reps = 20 if size == 32 else 3
        ra(random_resized_crop(x, gen), gen)  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            y = random_resized_crop(x, gen)
            y = torch.where(torch.rand(64, generator=gen).view(64, 1, 1, 1) < 0.5, y.flip(3), y)
            ra(y, gen)
        dt = time.perf_counter() - t
        print(f"64x3x{size}x{size}: {64 * reps / dt:,.0f} images/s")


if __name__ == "__main__":  # pragma: no cover
    _throughput()
