"""Writers of small dataset files in each supported format (nothing is ever downloaded in tests)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx_set(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0,
                 label_offset: int = 0) -> dict[str, np.ndarray]:
    """Four IDX files of random 28x28 images; labels cycle through the 10 classes (+ ``label_offset``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": ((np.arange(n_train) + label_offset) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": (np.arange(n_test) % 10).astype(np.uint8)}
    for key, name in IDX_NAMES.items():
        write_idx(folder / name, arrays[key], gz)
    return arrays


def cifar_batch(n: int, num_classes: int, label_key: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"test batch", label_key.encode(): [int(i % num_classes) for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)]}


def make_cifar10(folder: Path, per_batch: int = 20, n_test: int = 20) -> Path:
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(per_batch, 10, "labels", i), protocol=2))
    (root / "test_batch").write_bytes(pickle.dumps(cifar_batch(n_test, 10, "labels", 99), protocol=2))
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                   "horse", "ship", "truck")], b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def make_cifar100(folder: Path, n_train: int = 200, n_test: int = 100) -> Path:
    root = folder / "cifar-100-python"
    root.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        batch = cifar_batch(n, 100, "fine_labels", seed)
        batch[b"coarse_labels"] = [i % 20 for i in range(n)]
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    return root


def make_imagefolder(root: Path, counts: dict[str, int], sizes=((40, 30), (24, 48)), mode: str = "RGB") -> Path:
    """PNG files in ``root/<class>/``, alternating between ``sizes``; each class has its own colour."""
    from PIL import Image

    for k, (cls, n) in enumerate(counts.items()):
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            colour = (40 * k % 256, 255 - 30 * k % 256, (17 * i) % 256) if mode == "RGB" else (40 * k) % 256
            Image.new(mode, (w, h), colour).save(d / f"{i:03d}.png")
    return root
