"""Types and helpers shared by the dataset formats: in-memory splits, stratified splitting, resizing,
channel conversion and the folders where dataset files are looked up.

Images are held as ``uint8`` tensors of shape ``(N, C, H, W)`` at the task's input size: a 70k-image
28x28 dataset is 55 MB, so every small dataset lives in memory, and normalisation plus augmentation run on
whole batches (:mod:`mixnas.data.loader`), never per sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mixnas.errors import MixnasError

# Debian installs dataset packages here (e.g. ``dataset-fashion-mnist``). A list, so tests can replace it.
SYSTEM_DIRS: list[Path] = [Path("/usr/share/datasets")]

FIT_MODES = ("auto", "pad", "resize")


@dataclass(frozen=True)
class Split:
    """Images (uint8, ``(N, C, H, W)``) and their labels (int64, ``(N,)``)."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("one label per image is required")
        object.__setattr__(self, "labels", self.labels.to(torch.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])

    def fraction(self, fraction: float, seed: int) -> Split:
        """A seeded, class-stratified subset holding ``fraction`` of the images (the proxy's fidelity knob)."""
        if fraction >= 1.0:
            return self
        keep, _ = stratified_split(self.labels, 1.0 - fraction, seed)
        return self.take(keep)


@dataclass(frozen=True)
class RawData:
    """What a format loader returns, before splitting and fitting to the task."""

    train: Split
    test: Split | None
    classes: tuple[str, ...]
    source: str  # the folder or files it was read from


@dataclass(frozen=True)
class LoadRequest:
    """What a format loader is asked for. Most formats ignore the size (they are fitted afterwards); the
    ImageFolder format decodes straight to it, since its images come in every size."""

    name: str
    data_dir: Path | None
    image_size: int
    in_channels: int
    download: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to load it and what it is."""

    name: str
    load: Callable[[LoadRequest], RawData]
    in_channels: int  # native channel count
    default_image_size: int
    flip: bool  # whether a horizontal flip keeps the label (not for digits)
    doc: str
    num_classes: int | None = None  # when fixed by the dataset (None: a user's folder decides)


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into ``(kept, held_out)`` with ``round(fraction * n_c)`` of every class ``c`` held out.

    Seeded and independent of the global RNG; both index tensors are sorted, so the data keep their order.
    """
    gen = torch.Generator().manual_seed(int(seed))
    labels = labels.to(torch.int64)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels).tolist() if len(labels) else []
    held, start = [], 0
    for count in counts:
        if count:
            idx = order[start:start + count]
            n_held = int(round(fraction * count))
            held.append(idx[torch.randperm(count, generator=gen)[:n_held]])
        start += count
    held_idx = torch.sort(torch.cat(held)).values if held else torch.zeros(0, dtype=torch.int64)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).flatten(), held_idx


# -- fitting images to the task ------------------------------------------------------------------------------


def convert_channels(images: Tensor, in_channels: int, what: str = "images") -> Tensor:
    """Grey -> RGB by repetition; RGB -> grey by ITU-R 601 luma (what PIL's ``convert('L')`` does)."""
    c = images.shape[1]
    if c == in_channels:
        return images
    if c == 1:
        return images.expand(-1, in_channels, -1, -1).contiguous()
    if c == 3 and in_channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        out = torch.empty(images.shape[0], 1, *images.shape[2:], dtype=torch.uint8)
        for i in range(0, images.shape[0], 8192):
            grey = (images[i:i + 8192].float() * weights).sum(1, keepdim=True)
            out[i:i + 8192] = grey.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise MixnasError(f"{what}: cannot convert {c} channels to {in_channels}; allowed: the same count, "
                      "1 -> any (repeated) and 3 -> 1 (luma)")


def fit_images(images: Tensor, image_size: int, in_channels: int, mode: str = "auto",
               what: str = "images") -> Tensor:
    """Fit ``(N, C, H, W)`` uint8 images to ``image_size`` squares with ``in_channels`` channels.

    ``pad`` centres the image on a black square (28x28 Fashion-MNIST -> 32x32, as LeNet did with MNIST);
    ``resize`` interpolates bilinearly (antialiased when shrinking); ``auto`` pads when the image is
    smaller by at most a quarter of its side and resizes otherwise (8x8 digits -> 32x32 are resized).
    """
    if mode not in FIT_MODES:
        raise MixnasError(f"fit mode {mode!r} is not allowed; allowed: {', '.join(FIT_MODES)}")
    images = convert_channels(images, in_channels, what)
    h, w = images.shape[2:]
    if h == w == image_size:
        return images
    grow = image_size - max(h, w)
    pad = mode == "pad" or (mode == "auto" and 0 <= grow <= max(h, w) // 4)
    if pad:
        if grow < 0:
            raise MixnasError(f"{what}: cannot pad {h}x{w} images to {image_size}x{image_size}; use resize")
        top, left = (image_size - h) // 2, (image_size - w) // 2
        return F.pad(images, (left, image_size - w - left, top, image_size - h - top))
    out = torch.empty(images.shape[0], images.shape[1], image_size, image_size, dtype=torch.uint8)
    shrink = image_size < max(h, w)
    for i in range(0, images.shape[0], 4096):
        chunk = F.interpolate(images[i:i + 4096].float(), size=(image_size, image_size), mode="bilinear",
                              align_corners=False, antialias=shrink)
        out[i:i + 4096] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (float64 accumulation)."""
    # Exact and fast: a 256-bin histogram per channel instead of float passes over every pixel.
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255.0
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].flatten(), minlength=256).numpy().astype(np.float64)
        n = hist.sum()
        mean = float((hist * values).sum() / n)
        var = float((hist * (values - mean) ** 2).sum() / n)
        means.append(round(mean, 6))
        stds.append(round(max(var ** 0.5, 1e-3), 6))
    return tuple(means), tuple(stds)


# -- where dataset files are looked up -------------------------------------------------------------------------


def cache_root() -> Path:
    """``$MIXNAS_CACHE``, else ``$XDG_CACHE_HOME/mixnas`` or ``~/.cache/mixnas`` (the user cache folder)."""
    root = os.environ.get("MIXNAS_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mixnas"


def dataset_cache_dir(name: str) -> Path:
    return cache_root() / "datasets" / name


def search_dirs(name: str, data_dir: Path | str | None, folder_names: Sequence[str] = ()) -> list[Path]:
    """The folders looked in, in order: ``data_dir``, ``$MIXNAS_DATA``, the user cache, ``/usr/share/datasets``.

    Under ``data_dir`` and ``$MIXNAS_DATA`` both the folder itself and its ``<name>/`` sub-folder are tried
    (and any extra ``folder_names``, e.g. ``cifar-10-batches-py``), so either may be given.
    """
    subs = [name, *folder_names]
    out: list[Path] = []
    for root in (data_dir, os.environ.get("MIXNAS_DATA") or None):
        if root is None:
            continue
        root = Path(root).expanduser()
        out += [root / s for s in subs] + [root]
    out += [dataset_cache_dir(name)]
    out += [d / s for d in SYSTEM_DIRS for s in subs]
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def describe_dirs(dirs: Sequence[Path]) -> str:
    return ", ".join(str(d) for d in dirs)
