"""Batches straight from in-memory uint8 tensors, augmented and normalised as whole-batch tensor ops.

There are no worker processes and no per-sample Python: a batch is one gather of uint8 rows, one
vectorised random crop + flip (one gather from a strided window view), and one
normalisation on the float copy. On 2 CPU cores this costs well under 1 % of a training step (measured in
``bench/train_throughput.py``), so the loader never starves the model. On CUDA the uint8 split is copied to
the device once and batches are augmented there.

Randomness comes from a ``torch.Generator`` reseeded from ``(seed, epoch)`` at the start of every epoch:
the order and the augmentation of epoch ``e`` do not depend on what ran before, and the global RNG is
never touched.

The Strip-MLP / DeiT recipe (:mod:`mixnas.data.augment`) plugs in here: on the uint8 batch a random resized
crop replaces the padded crop, then the flip, then RandAugment; after normalisation random erasing; then
mixup / cutmix, after which the loader yields soft targets ``(B, K)`` float instead of labels. ``crop_pct``
applies the evaluation resize-then-centre-crop rule to every batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from mixnas.data.augment import Mixup, RandAugment, eval_resize_crop, random_erasing, random_resized_crop
from mixnas.data.base import Split


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding by ``crop_padding`` pixels, and a horizontal flip with probability 1/2.

    Optionally (all off by default): ``resized_crop``, the area-share range of a random resized crop done
    before the padded crop (use one or the other); ``rand_augment``, applied after the flip; ``erasing``, the
    per-image probability of random erasing, applied by :class:`BatchLoader` after normalisation.
    """

    crop_padding: int = 4
    flip: bool = True
    resized_crop: tuple[float, float] | None = None
    rand_augment: RandAugment | None = None
    erasing: float = 0.0

    @property
    def active(self) -> bool:
        return (self.crop_padding > 0 or self.flip or self.resized_crop is not None
                or self.rand_augment is not None or self.erasing > 0)


def augment_batch(images: Tensor, aug: Augment, gen: torch.Generator) -> Tensor:
    """Randomly crop (after zero padding) and flip a ``(B, C, H, W)`` uint8 batch.

    The crop picks, per sample, one of the ``(2p+1)^2`` windows of a strided ``unfold`` view of the padded
    batch: one gather, several times faster than indexing rows and columns separately.
    """
    if aug.resized_crop is not None:
        images = random_resized_crop(images, gen, scale=aug.resized_crop)
    b, c, h, w = images.shape
    p = aug.crop_padding
    device = images.device
    flip = torch.rand(b, generator=gen) < 0.5 if aug.flip else None
    if p:
        dy = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(device)
        windows = F.pad(images, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
        images = windows[torch.arange(b, device=device), :, dy, dx]
    if flip is not None:
        images = torch.where(flip.to(device)[:, None, None, None], images.flip(3), images)
    if aug.rand_augment is not None:
        images = aug.rand_augment(images, gen)
    return images


class BatchLoader:
    """Iterate over ``(images float32 normalised, labels int64)`` batches of a :class:`Split`.

    With ``mix`` the second element is the soft targets ``(B, K)`` float32 instead of the labels.
    """

    def __init__(self, split: Split, batch_size: int, *, mean: Sequence[float], std: Sequence[float],
                 shuffle: bool = False, augment: Augment | None = None, seed: int = 0, drop_last: bool = False,
                 device: str | torch.device = "cpu", mix: Mixup | None = None, crop_pct: float | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.device = torch.device(device)
        # The whole (small) split moves to the accelerator once; on CPU this is a no-op.
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.augment = augment if augment is not None and augment.active else None
        self.mix, self.crop_pct = mix, crop_pct
        c = self.images.shape[1]
        # (x / 255 - mean) / std  ==  x * scale + shift, one fused multiply-add on the float copy
        scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32)
        shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32)
        if len(scale) != c:
            raise ValueError(f"{len(scale)} normalisation channels for {c}-channel images")
        self.scale = scale.view(1, c, 1, 1).to(self.device)
        self.shift = shift.view(1, c, 1, 1).to(self.device)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        """Images seen per epoch (after ``drop_last``)."""
        n = len(self.labels)
        return (n // self.batch_size) * self.batch_size if self.drop_last else n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed((int(self.seed) * 1_000_003 + self.epoch) % (2 ** 63))

    def normalise(self, images: Tensor) -> Tensor:
        return torch.addcmul(self.shift, images.float(), self.scale)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        gen = self._generator()
        n = len(self.labels)
        order = torch.randperm(n, generator=gen).to(self.device) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            if order is None:
                x, y = self.images[sl], self.labels[sl]
            else:
                idx = order[sl]
                x, y = self.images[idx], self.labels[idx]
            if self.augment is not None:
                x = augment_batch(x, self.augment, gen)
            if self.crop_pct is not None:
                x = eval_resize_crop(x, self.crop_pct)
            x = self.normalise(x)
            if self.augment is not None and self.augment.erasing > 0:
                x = random_erasing(x, self.augment.erasing, gen)
            if self.mix is not None:
                x, y, _ = self.mix(x, y, gen)
            yield x, y
