"""The paper recipe's augmentations: RandAugment ops and parsing, random resized crop, random erasing, mixup /
cutmix, the evaluation crop, and their determinism under a seeded generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixnas.data.augment import (
    OPS,
    RAND_INCREASING_OPS,
    Mixup,
    RandAugment,
    apply_op,
    crop_boxes,
    cutmix_batch,
    eval_resize_crop,
    random_erasing,
    random_resized_crop,
)
from mixnas.data.base import Split
from mixnas.data.loader import Augment, BatchLoader, augment_batch
from mixnas.errors import MixnasError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(b: int = 2, c: int = 3, size: int = 16) -> torch.Tensor:
    """A known pattern: every value 0-255 occurs; channels differ."""
    v = torch.arange(b * c * size * size) % 256
    return v.view(b, c, size, size).to(torch.uint8)


# -- parsing ----------------------------------------------------------------------------------------------------


def test_rand_augment_string_is_parsed_as_timm_does():
    ra = RandAugment.parse("rand-m9-mstd0.5-inc1", fill=(124, 116, 104))
    assert (ra.magnitude, ra.num_ops, ra.magnitude_std, ra.increasing, ra.prob) == (9.0, 2, 0.5, True, 0.5)
    assert ra.ops == RAND_INCREASING_OPS and ra.fill == (124, 116, 104) and len(ra.ops) == 15
    assert RandAugment.parse("rand-n3-m5").num_ops == 3 and not RandAugment.parse("rand-m5").increasing
    assert RandAugment.parse("rand").magnitude == 10.0  # timm's default magnitude
    assert set(RandAugment().ops) | set(RAND_INCREASING_OPS) <= set(OPS)


@pytest.mark.parametrize("bad", ["", "rand-x9", "rand-m11", "rand-m9-m8", "augmix-m9", "rand-m9-inc2",
                                 "rand-n0", "rand-m9--inc1", "rand-minf"])
def test_a_malformed_rand_augment_string_names_the_allowed_form(bad):
    with pytest.raises(MixnasError, match=r"expected the form 'rand-m9-mstd0.5-inc1'"):
        RandAugment.parse(bad)


# -- the ops ----------------------------------------------------------------------------------------------------


def test_pixel_ops_on_a_known_image():
    x = ramp()
    assert torch.equal(apply_op("Invert", x), 255 - x)
    assert torch.equal(apply_op("Posterize", x, 2), x & 0b11000000)
    assert torch.equal(apply_op("Posterize", x, 8), x)
    assert torch.equal(apply_op("Solarize", x, 128), torch.where(x >= 128, 255 - x, x))
    assert torch.equal(apply_op("Solarize", x, 256), x)  # timm's magnitude 0 of SolarizeIncreasing
    added = apply_op("SolarizeAdd", x, 100)
    assert torch.equal(added, torch.where(x < 128, (x.int() + 100).clamp(max=255).to(torch.uint8), x))
    assert torch.equal(apply_op("Brightness", x, 1.0), x) and torch.equal(apply_op("Brightness", x, 0.0), 0 * x)
    low = (x // 4 + 60).to(torch.uint8)  # values 60..123
    stretched = apply_op("AutoContrast", low)
    assert stretched.amin((2, 3)).eq(0).all() and stretched.amax((2, 3)).eq(255).all()


def test_geometric_ops_rotate_shear_and_translate_with_the_fill():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    x[0, 0, 1, 5] = 200  # one bright pixel
    x[0, 0, 6, 2] = 100
    assert torch.equal(apply_op("Rotate", x, 90.0, fill=7), torch.rot90(x, 1, (2, 3)))  # PIL: counter-clockwise
    assert torch.equal(apply_op("Rotate", x, -90.0, fill=7), torch.rot90(x, -1, (2, 3)))
    shifted = apply_op("TranslateXRel", x, 0.25, fill=7)  # 2 pixels: the source is 2 to the right
    assert torch.equal(shifted[..., :6], x[..., 2:]) and shifted[..., 6:].eq(7).all()
    down = apply_op("TranslateYRel", x, -0.25, fill=7)
    assert torch.equal(down[..., 2:, :], x[..., :6, :]) and down[..., :2, :].eq(7).all()
    assert torch.equal(apply_op("ShearX", x, 0.0), x)
    sheared = apply_op("ShearX", x, 0.25, fill=7)  # source x = x + 0.25 y, pixel centres at i + 0.5 (PIL)
    assert sheared[0, 0, 1, 4:6].tolist() == [75, 125]  # row 1 samples 0.375 px to the right: bilinear split
    assert sheared[0, 0, 1, -1] == 0 and sheared[0, 0, 2, -1] == 7  # from row 2 the last column's source is out


def test_ops_agree_with_pil_within_one_level():
    Image = pytest.importorskip("PIL.Image")
    from PIL import ImageEnhance, ImageOps

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    arr[:4] //= 3  # an uneven histogram for equalize
    img = Image.fromarray(arr)
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()

    def check(name, arg, ref, tol):
        got = apply_op(name, x, arg)[0].permute(1, 2, 0).int()
        assert (got - torch.from_numpy(np.array(ref)).int()).abs().max() <= tol, name

    check("AutoContrast", 0, ImageOps.autocontrast(img), 0)
    check("Equalize", 0, ImageOps.equalize(img), 0)
    check("Posterize", 3, ImageOps.posterize(img, 3), 0)
    check("Solarize", 100, ImageOps.solarize(img, 100), 0)
    for name, enhancer in (("Color", ImageEnhance.Color), ("Contrast", ImageEnhance.Contrast),
                           ("Brightness", ImageEnhance.Brightness), ("Sharpness", ImageEnhance.Sharpness)):
        for factor in (0.3, 1.7):
            check(name, factor, enhancer(img).enhance(factor), 1)
    check("Rotate", 90.0, img.rotate(90, fillcolor=(128, 128, 128)), 0)  # 12x10: corners filled


def test_rand_augment_is_deterministic_per_generator_and_keeps_shape_and_dtype():
    ra = RandAugment.parse("rand-m9-mstd0.5-inc1")
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=gen(1))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b, c = ra(x, gen(0)), ra(x, gen(0)), ra(x, gen(1))
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is never touched
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x).flatten(1).any(1).float().mean()
    assert 0.5 < changed < 1.0  # 2 ops at p = 0.5: 3/4 of the images are touched (some ops are no-ops)
    one = ra(x[:1, :1], gen(0))  # single-channel images work too
    assert one.shape == (1, 1, 16, 16)


# -- crops ------------------------------------------------------------------------------------------------------


def test_random_resized_crop_boxes_fit_and_the_output_keeps_its_size():
    boxes = crop_boxes(500, 32, 32, gen(0))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    share = (h * w).float() / 1024
    assert share.min() >= 0.06 and share.max() <= 1.0 and share.mean() < 0.7  # area in [0.08, 1], rounded
    ratio = w.float() / h.float()
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    x = ramp(b=4, size=32)
    out = random_resized_crop(x, gen(3))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, random_resized_crop(x, gen(3)))
    assert torch.equal(random_resized_crop(x, gen(3), scale=(1.0, 1.0), ratio=(1.0, 1.0)), x)  # the whole image
    assert random_resized_crop(x, gen(3), size=20).shape == (4, 3, 20, 20)


def test_eval_crop_resizes_up_then_takes_the_centre():
    x = ramp(b=1, c=1, size=32)
    assert torch.equal(eval_resize_crop(x, 1.0), x)
    out = eval_resize_crop(x, 0.875)  # 32 -> 36, crop 2..34
    assert out.shape == x.shape
    Image = pytest.importorskip("PIL.Image")
    ref = Image.fromarray(x[0, 0].numpy()).resize((36, 36), Image.BICUBIC).crop((2, 2, 34, 34))
    assert (out[0, 0].int() - torch.from_numpy(np.array(ref)).int()).abs().max() <= 1


# -- after normalisation ----------------------------------------------------------------------------------------


def test_random_erasing_replaces_one_rectangle_per_image_with_noise():
    x = torch.full((200, 3, 16, 16), 7.0)
    out = random_erasing(x, 1.0, gen(0))
    assert torch.equal(out, random_erasing(x, 1.0, gen(0)))
    erased = 0
    for img in out:
        mask = (img != 7.0).any(0)
        if not mask.any():
            continue  # ten tries did not fit a box
        erased += 1
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all() and int(mask.sum()) == box.numel()  # exactly one filled rectangle
        assert 0.02 * 256 * 0.5 <= box.numel() <= 256 / 3 * 1.3
    assert erased > 150
    assert torch.equal(random_erasing(x, 0.0, gen(0)), x)
    some = random_erasing(x, 0.25, gen(1))
    assert 20 < int((some != 7.0).flatten(1).any(1).sum()) < 80


def test_mixup_targets_are_distributions_and_lambda_in_range():
    y = torch.arange(8) % 5
    x = torch.randn(8, 3, 4, 4, generator=gen(0))
    mix = Mixup(num_classes=5, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1)
    for seed in range(10):
        out, target, lam = mix(x, y, gen(seed))
        assert 0.0 <= lam <= 1.0 and target.shape == (8, 5)
        assert torch.allclose(target.sum(1), torch.ones(8))
        assert torch.allclose(out, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
        expect = torch.full((8, 5), 0.02)
        expect[torch.arange(8), y] += 0.9 * lam
        expect[torch.arange(8), y.flip(0)] += 0.9 * (1 - lam)
        assert torch.allclose(target, expect, atol=1e-6)
    a, b = mix(x, y, gen(3)), mix(x, y, gen(3))
    assert torch.equal(a[0], b[0]) and a[2] == b[2]


def test_cutmix_lambda_is_the_kept_area():
    x = torch.arange(16).float().view(16, 1, 1, 1).expand(16, 1, 10, 10).contiguous()
    for seed in range(10):
        out, lam = cutmix_batch(x, 0.6, gen(seed))
        kept = (out == x).float().mean(dim=(1, 2, 3))
        assert torch.allclose(kept, torch.full((16,), lam))
    mix = Mixup(num_classes=3, mixup_alpha=0.0, cutmix_alpha=1.0)
    y = torch.arange(16) % 3
    out, target, lam = mix(x, y, gen(0))
    assert (out == x).float().mean().item() == pytest.approx(lam)
    assert torch.allclose(target.sum(1), torch.ones(16))


# -- in the loader ----------------------------------------------------------------------------------------------


def test_the_loader_runs_the_recipe_deterministically_and_yields_soft_targets():
    split = Split(torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=gen(0)), torch.arange(40) % 4)
    aug = Augment(0, True, resized_crop=(0.08, 1.0), rand_augment=RandAugment.parse("rand-m9-mstd0.5-inc1"),
                  erasing=0.25)
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, augment=aug, mix=Mixup(4), seed=2)
    a, b = list(BatchLoader(split, 16, **kw)), list(BatchLoader(split, 16, **kw))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    x, y = a[0]
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32
    assert y.shape == (16, 4) and torch.allclose(y.sum(1), torch.ones(16))
    plain = augment_batch(split.images, Augment(0, False, rand_augment=RandAugment()), gen(0))
    assert plain.shape == split.images.shape and plain.dtype == torch.uint8
