"""CIFAR-10 / CIFAR-100 python-version batches: folders, archives, safety and clear errors."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest
from dataset_files import make_cifar10, make_cifar100

from mixnas.data import load_dataset
from mixnas.errors import MixnasError


def test_cifar10_folder_loads_rows_as_rgb_planes(tmp_path):
    root = make_cifar10(tmp_path, per_batch=20, n_test=20)
    data = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.1, seed=0, test=True)
    assert data.source == str(root)
    assert data.classes[:2] == ("airplane", "automobile") and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert data.train.images.shape[1:] == (3, 32, 32) and data.in_channels == 3
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major
    batch = pickle.loads((root / "test_batch").read_bytes(), encoding="bytes")
    row = batch[b"data"][3]
    img = data.test.images[3]
    assert np.array_equal(img[0].flatten().numpy(), row[:1024])
    assert np.array_equal(img[2].flatten().numpy(), row[2048:])
    assert data.test.labels.tolist() == batch[b"labels"]


def test_cifar10_from_the_original_archive_and_converted_to_grey(tmp_path):
    root = make_cifar10(tmp_path / "src")
    archive_dir = tmp_path / "data"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="cifar-10-batches-py")
    data = load_dataset("cifar10", data_dir=archive_dir, in_channels=1, image_size=16, test=True)
    assert data.source.endswith("cifar-10-python.tar.gz")
    assert data.train.images.shape[1:] == (1, 16, 16)
    assert len(data.test) == 20


def test_cifar100_uses_fine_labels(tmp_path):
    make_cifar100(tmp_path, n_train=200, n_test=100)
    data = load_dataset("cifar100", data_dir=tmp_path, val_fraction=0.5, test=True)
    assert data.num_classes == 100 and data.classes[5] == "c5"
    assert len(data.train) == 100 and len(data.val) == 100  # 2 per class, one held out of each
    assert data.test.labels.max() == 99


def test_env_folder_is_searched(tmp_path, monkeypatch):
    make_cifar100(tmp_path / "env")
    monkeypatch.setenv("MIXNAS_DATA", str(tmp_path / "env"))
    assert load_dataset("cifar100").source == str(tmp_path / "env" / "cifar-100-python")


def test_missing_cifar_says_where_to_get_it(tmp_path):
    with pytest.raises(MixnasError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and str(tmp_path) in msg
    assert "data_batch_1" in msg and "\n" not in msg


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    root = make_cifar10(tmp_path)
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(MixnasError, match=r"data_batch_3: not a CIFAR python-version batch .*refusing to load"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_a_batch_with_the_wrong_shape_is_named(tmp_path):
    root = make_cifar10(tmp_path)
    bad = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}
    (root / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(MixnasError, match=r"data_batch_2: expected N x 3072"):
        load_dataset("cifar10", data_dir=tmp_path)
