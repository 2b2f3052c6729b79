"""IDX loading (gzipped and raw), the lookup order, the checksummed download and the offline message."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from dataset_files import IDX_NAMES, idx_bytes, make_idx_set, write_idx

from mixnas.data import base, idx, load_dataset
from mixnas.errors import MixnasError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_padded_to_32_with_a_stratified_val_split(tmp_path, gz):
    arrays = make_idx_set(tmp_path / "mnist", n_train=60, n_test=20, gz=gz)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.1, seed=0, test=True)
    assert data.image_size == 32 and data.in_channels == 1 and data.num_classes == 10
    # 6 images per class: round(0.1 * 6) = 1 of each class is held out (stratified)
    assert len(data.train) == 50 and len(data.val) == 10 and len(data.test) == 20
    assert sorted(data.val.labels.tolist()) == list(range(10))
    # 28x28 -> 32x32 is padding, centred: the original pixels are intact, the border is black
    test = data.test.images[:, 0]
    assert np.array_equal(test[:, 2:30, 2:30].numpy(), arrays["test_images"])
    assert int(test[:, :2].sum()) == 0 and int(test[:, :, 30:].sum()) == 0
    assert data.test.labels.tolist() == arrays["test_labels"].tolist()


def test_the_test_split_is_only_loaded_on_request(tmp_path):
    make_idx_set(tmp_path)
    assert load_dataset("mnist", data_dir=tmp_path).test is None


def test_read_idx_rejects_bad_files_naming_them(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(MixnasError, match="bad-idx1-ubyte: not an IDX file"):
        idx.read_idx(bad)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(MixnasError, match="short-idx3-ubyte: IDX header promises shape"):
        idx.read_idx(short)
    broken_gz = tmp_path / "broken-idx3-ubyte.gz"
    broken_gz.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)))[:20])
    with pytest.raises(MixnasError, match="broken-idx3-ubyte.gz: cannot read IDX file"):
        idx.read_idx(broken_gz)
    assert idx.read_idx(write_idx(tmp_path / "ok-idx3-ubyte", np.ones((2, 3, 5), np.uint8), gz=True)).shape == (2, 3, 5)


def test_lookup_order_data_dir_then_env_then_cache_then_system(tmp_path, monkeypatch):
    for name in ("given", "env", "system"):
        make_idx_set(tmp_path / name / "fashion-mnist")
    cache = tmp_path / "user-cache" / "datasets" / "fashion-mnist"
    make_idx_set(cache)
    monkeypatch.setenv("MIXNAS_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(base, "SYSTEM_DIRS", [tmp_path / "system"])
    assert load_dataset("fashion-mnist", data_dir=tmp_path / "given").source == str(tmp_path / "given" /
                                                                                     "fashion-mnist")
    assert load_dataset("fashion-mnist").source == str(tmp_path / "env" / "fashion-mnist")
    monkeypatch.delenv("MIXNAS_DATA")
    assert load_dataset("fashion-mnist").source == str(cache)
    for f in cache.iterdir():
        f.unlink()
    assert load_dataset("fashion-mnist").source == str(tmp_path / "system" / "fashion-mnist")
    # the data dir itself (not only its fashion-mnist/ sub-folder) is accepted
    make_idx_set(tmp_path / "flat")
    assert load_dataset("fashion-mnist", data_dir=tmp_path / "flat").source == str(tmp_path / "flat")


def test_offline_message_says_how_to_get_fashion_mnist(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    write_idx(partial / IDX_NAMES["train_images"], np.zeros((2, 28, 28), np.uint8), gz=True)
    with pytest.raises(MixnasError) as err:
        load_dataset("fashion-mnist", data_dir=partial)
    msg = str(err.value)
    assert "\n" not in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "downloading from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ failed" in msg
    assert "network unreachable (test)" in msg
    assert str(partial) in msg and "lacks train-labels-idx1-ubyte" in msg
    assert str(tmp_path / "system" / "fashion-mnist") in msg  # every place looked in is named


def test_download_switched_off_and_mnist_never_downloads(tmp_path, monkeypatch):
    with pytest.raises(MixnasError, match="downloading is switched off"):
        load_dataset("fashion-mnist", download=False)
    monkeypatch.setenv("MIXNAS_OFFLINE", "1")
    with pytest.raises(MixnasError, match="downloading is switched off"):
        load_dataset("fashion-mnist")
    with pytest.raises(MixnasError, match=r"mnist: IDX files not found in .*put train-images-idx3-ubyte.gz"):
        load_dataset("mnist")


class _FakeResponse(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_published_md5(tmp_path, monkeypatch):
    """The download path with a fake server: good files are kept, a wrong checksum is refused and removed."""
    files = {}
    rng = np.random.default_rng(0)
    shapes = {"train_images": (30, 28, 28), "train_labels": (30,), "test_images": (10, 28, 28),
              "test_labels": (10,)}
    for key, stem in IDX_NAMES.items():
        arr = rng.integers(0, 10 if "labels" in key else 256, shapes[key], dtype=np.uint8)
        files[stem + ".gz"] = gzip.compress(idx_bytes(arr))
    requested = []

    def fake_urlopen(url, timeout):
        requested.append(url)
        return _FakeResponse(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(idx, "_urlopen", fake_urlopen)
    monkeypatch.setattr(idx, "FASHION_MD5", {k: "0" * 32 for k in files})
    with pytest.raises(MixnasError, match="does not match the published 0000"):
        load_dataset("fashion-mnist")
    dest = tmp_path / "user-cache" / "datasets" / "fashion-mnist"
    assert not any(dest.iterdir())  # the bad file was removed
    monkeypatch.setattr(idx, "FASHION_MD5", {k: hashlib.md5(v).hexdigest() for k, v in files.items()})
    data = load_dataset("fashion-mnist", test=True)
    assert data.source == str(dest) and len(data.test) == 10
    assert all(u.startswith(idx.FASHION_URL) for u in requested)
    assert sorted(p.name for p in dest.iterdir()) == sorted(files)


def test_published_fashion_mnist_checksums_are_the_official_ones():
    assert idx.FASHION_MD5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }


SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                        "(CI installs it)")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.setattr(base, "SYSTEM_DIRS", [Path("/usr/share/datasets")])
    data = load_dataset("fashion-mnist", test=True)
    assert data.source == str(SYSTEM_FASHION)
    assert (len(data.train), len(data.val), len(data.test)) == (54_000, 6_000, 10_000)
    assert data.train.images.shape[1:] == (1, 32, 32) and data.classes[0] == "T-shirt/top"
    assert data.val.labels.bincount().tolist() == [600] * 10
    assert 0.2 < data.mean[0] < 0.3  # measured on the padded training split
