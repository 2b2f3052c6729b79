"""Fitting images to the task (pad / resize / channels), stratified splits, statistics and the registry."""

from __future__ import annotations

import pytest
import torch

from mixnas.data import DATASETS, load_dataset
from mixnas.data.base import channel_stats, convert_channels, fit_images, stratified_split
from mixnas.errors import MixnasError, UnknownNameError


def _images(n=4, c=1, h=28, w=28, seed=0):
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_small_growth_pads_centred_and_large_growth_resizes():
    x = _images(h=28, w=28)
    padded = fit_images(x, 32, 1)
    assert padded.shape == (4, 1, 32, 32) and torch.equal(padded[:, :, 2:30, 2:30], x)
    assert padded[:, :, :2].sum() == 0 and padded[:, :, :, 30:].sum() == 0
    tiny = _images(h=8, w=8)
    resized = fit_images(tiny, 32, 1)  # 8 -> 32 is more than a quarter: resized, not a dot in a black square
    assert resized.shape == (4, 1, 32, 32) and resized[:, :, :4].float().mean() > 0
    assert torch.equal(fit_images(tiny, 32, 1, mode="pad")[:, :, 12:20, 12:20], tiny)
    down = fit_images(_images(h=32, w=32), 16, 1)
    assert down.shape == (4, 1, 16, 16) and down.dtype == torch.uint8
    assert torch.equal(fit_images(x, 28, 1), x)  # already fitted: unchanged
    flat = torch.full((2, 1, 10, 10), 77, dtype=torch.uint8)
    assert (fit_images(flat, 40, 1, mode="resize") == 77).all()  # interpolation keeps a flat image flat
    with pytest.raises(MixnasError, match="cannot pad 28x28 images to 16x16"):
        fit_images(x, 16, 1, mode="pad")
    with pytest.raises(MixnasError, match="fit mode 'stretch' is not allowed"):
        fit_images(x, 32, 1, mode="stretch")


def test_channel_conversion():
    grey = _images(c=1, h=4, w=4)
    rgb = convert_channels(grey, 3)
    assert rgb.shape == (4, 3, 4, 4) and all(torch.equal(rgb[:, i], grey[:, 0]) for i in range(3))
    colour = torch.zeros(1, 3, 1, 1, dtype=torch.uint8)
    colour[0, :, 0, 0] = torch.tensor([255, 0, 0], dtype=torch.uint8)
    assert int(convert_channels(colour, 1)) == 76  # 0.299 * 255, PIL's luma
    with pytest.raises(MixnasError, match="cannot convert 3 channels to 2"):
        convert_channels(colour, 2)


def test_stratified_split_is_seeded_exhaustive_and_per_class():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = stratified_split(labels, 0.1, seed=3)
    assert torch.equal(torch.sort(torch.cat([keep, held])).values, torch.arange(100))
    assert labels[held].bincount().tolist() == [5, 3, 2]
    keep2, held2 = stratified_split(labels, 0.1, seed=3)
    assert torch.equal(held, held2) and torch.equal(keep, keep2)
    assert not torch.equal(held, stratified_split(labels, 0.1, seed=4)[1])


def test_channel_stats_match_a_direct_computation():
    x = _images(n=16, c=3, h=8, w=8)
    mean, std = channel_stats(x)
    ref = x.double() / 255
    assert mean == pytest.approx(ref.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert std == pytest.approx(ref.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-6)


def test_unknown_dataset_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'fashion_mnist' \(did you mean 'fashion-mnist'\?\); "
                                               "known: cifar10, cifar100, digits, fashion-mnist, imagefolder, mnist"):
        load_dataset("fashion_mnist")
    assert set(DATASETS) == {"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "digits"}


def test_digits_need_no_set_up_and_get_a_fixed_test_split():
    a = load_dataset("digits", val_fraction=0.1, seed=0, test=True)
    b = load_dataset("digits", val_fraction=0.2, seed=5, test=True)
    assert a.image_size == 32 and a.num_classes == 10 and a.flip is False
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.test.images, b.test.images)  # the test split does not depend on the search's split
    assert len(b.val) > len(a.val)
    assert load_dataset("digits").test is None
    rgb = load_dataset("digits", image_size=16, in_channels=3)
    assert rgb.train.images.shape[1:] == (3, 16, 16) and len(rgb.mean) == 3


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(MixnasError, match="val_fraction must be in"):
        load_dataset("digits", val_fraction=1.0)
    with pytest.raises(MixnasError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=0)
