"""ImageFolder: decoding to the task's size, stratified and seeded splits, the cache, and bad layouts."""

from __future__ import annotations

import pytest
import torch
from dataset_files import make_imagefolder

from mixnas.data import TEST_FRACTION, load_dataset
from mixnas.errors import MixnasError

COUNTS = {"cat": 10, "dog": 20, "emu": 5}


def test_images_of_any_size_are_decoded_to_squares(tmp_path):
    root = make_imagefolder(tmp_path / "pets", COUNTS)
    data = load_dataset("imagefolder", data_dir=root, image_size=16, val_fraction=0.2, seed=0, test=True)
    assert data.classes == ("cat", "dog", "emu")
    assert data.train.images.shape[1:] == (3, 16, 16)
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == sum(COUNTS.values())
    # a fixed stratified test split (20 % of each class), then 20 % of the rest for validation
    assert data.test.labels.bincount().tolist() == [round(TEST_FRACTION * n) for n in COUNTS.values()]
    # every image of a class has the class's colour in its red channel (PNG is lossless)
    for split in (data.train, data.val, data.test):
        red = split.images[:, 0, 8, 8]
        assert torch.equal(red, (40 * split.labels) % 256)
    grey = load_dataset("imagefolder", data_dir=root, image_size=8, in_channels=1)
    assert grey.train.images.shape[1:] == (1, 8, 8)


def test_splits_are_stratified_seeded_and_the_test_split_never_moves(tmp_path):
    root = make_imagefolder(tmp_path / "pets", COUNTS)
    a = load_dataset("imagefolder", data_dir=root, image_size=8, val_fraction=0.2, seed=1, test=True)
    b = load_dataset("imagefolder", data_dir=root, image_size=8, val_fraction=0.2, seed=1, test=True)
    c = load_dataset("imagefolder", data_dir=root, image_size=8, val_fraction=0.2, seed=2, test=True)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)  # another seed, another validation split
    assert torch.equal(a.test.images, c.test.images)  # ... but the same test split
    assert a.val.labels.bincount().tolist() == [2, 3, 1]  # round(0.2 * (8, 16, 4))


def test_train_and_test_folders_are_kept(tmp_path):
    make_imagefolder(tmp_path / "root" / "train", {"a": 6, "b": 6})
    make_imagefolder(tmp_path / "root" / "test", {"a": 2, "b": 3})
    data = load_dataset("imagefolder", data_dir=tmp_path / "root", image_size=8, val_fraction=0.5, test=True)
    assert data.classes == ("a", "b")
    assert len(data.test) == 5 and len(data.train) == 6 and len(data.val) == 6


def test_decoded_images_are_cached_and_a_changed_folder_is_decoded_again(tmp_path):
    root = make_imagefolder(tmp_path / "pets", {"x": 3, "y": 3})
    load_dataset("imagefolder", data_dir=root, image_size=8)
    cache = tmp_path / "user-cache" / "datasets" / "imagefolder"
    assert len(list(cache.glob("*.pt"))) == 1
    load_dataset("imagefolder", data_dir=root, image_size=8)
    assert len(list(cache.glob("*.pt"))) == 1  # reused
    make_imagefolder(root, {"x": 4, "y": 3})  # one more image
    data = load_dataset("imagefolder", data_dir=root, image_size=8, val_fraction=0.1, test=True)
    assert len(data.train) + len(data.val) + len(data.test) == 7
    assert len(list(cache.glob("*.pt"))) == 2


@pytest.mark.parametrize("layout, message", [
    ("missing", "no such folder"),
    ("loose", "2 images directly in the folder; expected one sub-folder per class"),
    ("empty_class", "no images in this class folder"),
    ("one_class", "only one class folder"),
    ("corrupt", "cannot decode the image"),
])
def test_bad_layouts_are_one_line_errors_naming_the_path(tmp_path, layout, message):
    root = tmp_path / "root"
    if layout == "loose":
        make_imagefolder(tmp_path / "tmp", {"a": 2})
        root.mkdir()
        for f in (tmp_path / "tmp" / "a").iterdir():
            f.rename(root / f.name)
    elif layout == "empty_class":
        make_imagefolder(root, {"a": 2, "b": 2})
        (root / "c").mkdir()
        (root / "c" / "notes.txt").write_text("no images here")
    elif layout == "one_class":
        make_imagefolder(root, {"a": 3})
    elif layout == "corrupt":
        make_imagefolder(root, {"a": 2, "b": 2})
        (root / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MixnasError) as err:
        load_dataset("imagefolder", data_dir=root, image_size=8)
    msg = str(err.value)
    assert message in msg and str(root) in msg and "\n" not in msg


def test_imagefolder_needs_a_root():
    with pytest.raises(MixnasError, match="give the root folder with --data-dir"):
        load_dataset("imagefolder")
