"""Datasets for proxy training, held in memory as uint8 tensors at the task's input size.

``load_dataset(name, data_dir, image_size, in_channels, val_fraction, seed)`` returns :class:`DataSplits`:

* ``train`` / ``val``: a seeded, class-stratified validation split carved from the training set. The
  search trains on ``train`` and reads ``val``; it never sees the test set.
* ``test``: loaded only when asked (``test=True``): the final evaluation is a separate, explicit step.
  Datasets without an official test set (``digits``, a single-folder ``imagefolder``) get a stratified
  20 % test split carved with a fixed seed, so it is the same whatever seed a search uses.

Images are padded or resized to ``image_size`` and converted to ``in_channels`` once, at load time
(:func:`mixnas.data.base.fit_images`). Normalisation is per dataset and per channel: the mean and standard
deviation are measured on the training split as loaded (after padding), so they match what the model sees.

Registered datasets: ``fashion-mnist`` (the default proxy; found on disk or downloaded and checksummed),
``mnist`` (IDX, user-provided), ``cifar10`` / ``cifar100`` (python-version pickles, user-provided),
``imagefolder`` (one sub-folder per class, ``--data-dir`` is the root) and ``digits`` (bundled with
scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.data.base import (
    DatasetSpec,
    LoadRequest,
    Split,
    channel_stats,
    fit_images,
    stratified_split,
)
from mixnas.data.cifar import load_cifar
from mixnas.data.digits import load_digits_dataset
from mixnas.data.idx import load_idx_dataset
from mixnas.data.imagefolder import load_imagefolder
from mixnas.errors import MixnasError, UnknownNameError

TEST_FRACTION = 0.2  # carved when a dataset has no official test split
TEST_SEED = 0  # fixed: the test set must not move with the search seed

DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset (a plugin may: :mod:`mixnas.plugins`); ``spec.load(LoadRequest) -> RawData``."""
    from mixnas.registry import RegistrationError

    if not isinstance(spec, DatasetSpec):
        raise RegistrationError(f"register_dataset takes a mixnas.data.base.DatasetSpec, found {spec!r:.60}")
    if not isinstance(spec.name, str) or not spec.name or any(c.isspace() or c == ":" for c in spec.name):
        raise RegistrationError(f"dataset name {spec.name!r:.60} must be a non-empty string without spaces or ':'")
    if spec.name in DATASETS:
        raise RegistrationError(f"dataset {spec.name!r} registered twice")
    if not callable(spec.load):
        raise RegistrationError(f"dataset {spec.name!r}: load must be a callable (LoadRequest) -> RawData")
    if spec.in_channels not in (1, 3) or not isinstance(spec.default_image_size, int) or spec.default_image_size < 1:
        raise RegistrationError(f"dataset {spec.name!r}: in_channels must be 1 or 3 and default_image_size a positive "
                                f"integer; found {spec.in_channels!r}, {spec.default_image_size!r}")
    if spec.num_classes is not None and (isinstance(spec.num_classes, bool) or not isinstance(spec.num_classes, int)
                                         or spec.num_classes < 2):
        raise RegistrationError(f"dataset {spec.name!r}: num_classes must be an integer of at least 2, or None when "
                                f"the data decide; found {spec.num_classes!r}")
    DATASETS[spec.name] = spec
    return spec


register_dataset(DatasetSpec("fashion-mnist", load_idx_dataset, 1, 32, True,
                             "Zalando's Fashion-MNIST: 60k/10k 28x28 grey, 10 classes (padded to 32)", 10))
register_dataset(DatasetSpec("mnist", load_idx_dataset, 1, 32, False,
                             "MNIST IDX files, user-provided: 60k/10k 28x28 grey, 10 classes", 10))
register_dataset(DatasetSpec("cifar10", load_cifar, 3, 32, True,
                             "CIFAR-10 python version, user-provided: 50k/10k 32x32 RGB, 10 classes", 10))
register_dataset(DatasetSpec("cifar100", load_cifar, 3, 32, True,
                             "CIFAR-100 python version, user-provided: 50k/10k 32x32 RGB, 100 fine classes", 100))
register_dataset(DatasetSpec("imagefolder", load_imagefolder, 3, 64, True,
                             "one sub-folder of images per class under --data-dir (e.g. Caltech-101)"))
register_dataset(DatasetSpec("digits", load_digits_dataset, 1, 32, False,
                             "scikit-learn's bundled 8x8 digits: 1,797 images, 10 classes (resized)", 10))


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]


@dataclass(frozen=True)
class DataSplits:
    """A dataset ready for training: uint8 splits at one size, normalisation and how it was made."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_fraction: float
    seed: int
    flip: bool  # whether horizontal flips keep labels (the default augmentation)
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    def describe(self) -> dict[str, Any]:
        """What a result records about its data."""
        return {"name": self.name, "source": self.source, "image_size": self.image_size,
                "in_channels": self.in_channels, "num_classes": self.num_classes, "train": len(self.train),
                "val": len(self.val), "test": None if self.test is None else len(self.test),
                "val_fraction": self.val_fraction, "split_seed": self.seed, "mean": list(self.mean),
                "std": list(self.std)}


def load_dataset(name: str, data_dir: str | Path | None = None, image_size: int | None = None,
                 in_channels: int | None = None, val_fraction: float = 0.1, seed: int = 0, *, test: bool = False,
                 fit: str = "auto", download: bool = True) -> DataSplits:
    """Load ``name`` fitted to ``image_size`` x ``image_size`` with ``in_channels`` channels.

    ``val_fraction`` of each class of the training set (seeded by ``seed``) becomes the validation split.
    ``test=True`` also returns the test split, for a final evaluation only.
    """
    spec = get_dataset(name)
    image_size = spec.default_image_size if image_size is None else image_size
    in_channels = spec.in_channels if in_channels is None else in_channels
    for what, value in (("image_size", image_size), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MixnasError(f"{name}: {what} must be a positive integer, found {value!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise MixnasError(f"{name}: val_fraction must be in [0, 1), found {val_fraction}")
    raw = spec.load(LoadRequest(name, Path(data_dir).expanduser() if data_dir else None, image_size, in_channels,
                                download))
    labelled, test_split = raw.train, raw.test
    if test_split is None:
        keep, held = stratified_split(labelled.labels, TEST_FRACTION, TEST_SEED)
        labelled, test_split = labelled.take(keep), labelled.take(held)
    train_idx, val_idx = stratified_split(labelled.labels, val_fraction, seed)
    train, val = labelled.take(train_idx), labelled.take(val_idx)

    def fitted(split: Split, part: str) -> Split:
        images = fit_images(split.images, image_size, in_channels, fit, what=f"{name} {part} images")
        return Split(images, split.labels)

    train = fitted(train, "train")
    val = fitted(val, "val")
    test_fitted = fitted(test_split, "test") if test else None
    mean, std = channel_stats(train.images)
    return DataSplits(name, raw.classes, train, val, test_fitted, mean, std, float(val_fraction), int(seed),
                      spec.flip, raw.source)


def dataset_names() -> list[str]:
    return sorted(DATASETS)


__all__ = ["DATASETS", "DataSplits", "DatasetSpec", "Split", "dataset_names", "fit_images", "get_dataset",
           "load_dataset", "register_dataset", "stratified_split"]
