"""The in-memory batch loader: batched crop + flip, normalisation, determinism per (seed, epoch)."""

from __future__ import annotations

import torch

from mixnas.data.base import Split
from mixnas.data.loader import Augment, BatchLoader, augment_batch


def _split(n=10, c=1, size=8):
    images = torch.zeros(n, c, size, size, dtype=torch.uint8)
    images[:, :, 3, 2] = 200  # one bright pixel at (row 3, col 2)
    return Split(images, torch.arange(n) % 3)


def test_crop_shifts_each_image_by_at_most_the_padding_and_flip_mirrors():
    split = _split(n=256)
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(split.images, Augment(crop_padding=2, flip=False), gen)
    assert out.shape == split.images.shape and out.dtype == torch.uint8
    rows, cols = [], []
    for img in out[:, 0]:
        hits = torch.nonzero(img == 200)
        if len(hits):  # the pixel may be cropped away
            rows.append(int(hits[0, 0]))
            cols.append(int(hits[0, 1]))
    assert set(rows) == {1, 2, 3, 4, 5} and set(cols) == {0, 1, 2, 3, 4}  # every shift in [-2, 2] occurs
    flipped = augment_batch(split.images, Augment(crop_padding=0, flip=True), torch.Generator().manual_seed(0))
    mirrored = (flipped[:, 0, 3, 5] == 200).sum()
    kept = (flipped[:, 0, 3, 2] == 200).sum()
    assert mirrored + kept == 256 and 90 < mirrored < 166  # about half are flipped


def test_batches_are_normalised_and_cover_the_epoch():
    split = Split(torch.randint(0, 256, (10, 2, 4, 4), dtype=torch.uint8), torch.arange(10))
    mean, std = (0.5, 0.25), (0.2, 0.1)
    loader = BatchLoader(split, 4, mean=mean, std=std)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x = batches[0][0]
    ref = (split.images[:4].float() / 255 - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    assert torch.allclose(x, ref, atol=1e-5) and x.dtype == torch.float32
    dropped = BatchLoader(split, 4, mean=mean, std=std, drop_last=True)
    assert len(dropped) == 2 and dropped.num_samples == 8


def test_order_and_augmentation_depend_only_on_seed_and_epoch():
    split = _split(n=64)
    kw = dict(mean=(0.1,), std=(0.3,), shuffle=True, augment=Augment(2, True))

    def epoch(loader, e):
        loader.set_epoch(e)
        return torch.cat([x for x, _ in loader]), torch.cat([y for _, y in loader])

    a, b = BatchLoader(split, 16, seed=1, **kw), BatchLoader(split, 16, seed=1, **kw)
    epoch(a, 1)  # a different history ...
    xa, ya = epoch(a, 2)
    xb, yb = epoch(b, 2)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # ... the same epoch 2
    xc, _ = epoch(a, 3)
    assert not torch.equal(xa, xc)
    assert sorted(ya.tolist()) == sorted(split.labels.tolist())  # a permutation of the split
