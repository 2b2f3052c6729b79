"""IDX files (the MNIST format): Fashion-MNIST (downloadable) and MNIST (user-provided).

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, one int32 per
dimension) followed by the raw array. Files may be gzipped (``.gz``) or not.

Fashion-MNIST is looked up in ``--data-dir``, ``$MIXNAS_DATA``, the user cache folder and
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package). When it is nowhere and
a network exists it is downloaded from the dataset's official location into the user cache, and each file
is checked against the MD5 checksum published in the official README. Debian's package holds the same
arrays re-compressed (gzip header without the file name, hence other .gz checksums), so files found on
disk are checked by structure (magic, shape, count) rather than by checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from mixnas.data.base import LoadRequest, RawData, Split, dataset_cache_dir, describe_dirs, search_dirs
from mixnas.errors import MixnasError

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MD5 = {  # github.com/zalandoresearch/fashion-mnist README, "Get the Data"
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw); a malformed file raises a :class:`MixnasError` naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:
        raise MixnasError(f"{path}: cannot read IDX file: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise MixnasError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MixnasError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise MixnasError(f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
                          f"{len(data) - header} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _candidates(stem: str) -> list[str]:
    # MNIST copies sometimes spell the names with a dot: train-images.idx3-ubyte
    dotted = stem.replace("-idx", ".idx")
    return [f"{stem}.gz", stem, f"{dotted}.gz", dotted]


def find_idx_folder(dirs: list[Path]) -> tuple[Path | None, dict[str, Path], list[str]]:
    """The first folder holding all four files; else ``(None, {}, notes about partial folders)``."""
    notes = []
    for d in dirs:
        if not d.is_dir():
            continue
        found = {}
        for key, stem in FILES.items():
            hit = next((d / n for n in _candidates(stem) if (d / n).is_file()), None)
            if hit is not None:
                found[key] = hit
        if len(found) == len(FILES):
            return d, found, notes
        if found:
            missing = [FILES[k] for k in FILES if k not in found]
            notes.append(f"{d} lacks {', '.join(missing)}")
    return None, {}, notes


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _urlopen(url: str, timeout: float):
    """The one place that touches the network (tests replace it)."""
    return urllib.request.urlopen(url, timeout=timeout)


def download_fashion_mnist(dest: Path, progress: bool | None = None) -> None:
    """Download the four official files into ``dest`` and verify their published MD5 checksums.

    Raises ``OSError`` (including ``urllib.error.URLError``) when the network is unreachable, and a
    :class:`MixnasError` when a file's checksum does not match (the bad file is removed).
    """
    dest.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    for name, md5 in FASHION_MD5.items():
        target = dest / name
        if target.is_file() and _md5(target) == md5:
            continue
        part = target.with_suffix(".gz.part")
        with _urlopen(FASHION_URL + name, timeout=30) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not show, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        got = _md5(part)
        if got != md5:
            part.unlink()
            raise MixnasError(f"{FASHION_URL + name}: MD5 {got} does not match the published {md5}; "
                              "the download was removed, try again")
        os.replace(part, target)


def _offline_message(req: LoadRequest, dirs: list[Path], notes: list[str], reason: str) -> str:
    files = ", ".join(f"{s}.gz" for s in FILES.values())
    where = f"not found in {describe_dirs(dirs)}"
    if notes:
        where += f" ({'; '.join(notes)})"
    if req.name == "fashion-mnist":
        return (f"fashion-mnist: IDX files {where}, and {reason}; install Debian's dataset-fashion-mnist "
                f"package (apt-get install dataset-fashion-mnist), or download {files} from {FASHION_URL} into "
                f"--data-dir or $MIXNAS_DATA")
    return f"{req.name}: IDX files {where}; put {files} (gzipped or not) in --data-dir or $MIXNAS_DATA"


def load_idx_dataset(req: LoadRequest) -> RawData:
    """Load Fashion-MNIST or MNIST: the 60k training and 10k test images with their labels."""
    dirs = search_dirs(req.name, req.data_dir)
    folder, files, notes = find_idx_folder(dirs)
    if folder is None and req.name == "fashion-mnist":
        dest = dataset_cache_dir(req.name)
        if not req.download or os.environ.get("MIXNAS_OFFLINE"):
            raise MixnasError(_offline_message(req, dirs, notes, "downloading is switched off"))
        try:
            download_fashion_mnist(dest)
        except (OSError, urllib.error.URLError) as err:
            reason = getattr(err, "reason", None) or err
            raise MixnasError(_offline_message(req, dirs, notes, f"downloading from {FASHION_URL} failed "
                                                                  f"({reason})")) from None
        folder, files, notes = find_idx_folder([dest])
    if folder is None:
        raise MixnasError(_offline_message(req, dirs, notes, "it cannot be downloaded"))
    arrays = {k: read_idx(p) for k, p in files.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise MixnasError(f"{files[f'{part}_images']}: expected (N, H, W) images and N labels, found "
                              f"{images.shape} images and {labels.shape} labels")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise MixnasError(f"{files[f'{part}_labels']}: labels must be 0-9, found {labels.min()}-{labels.max()}")

    def split(part: str) -> Split:
        images = torch.from_numpy(arrays[f"{part}_images"].astype(np.uint8, copy=True)).unsqueeze(1)
        return Split(images, torch.from_numpy(arrays[f"{part}_labels"].astype(np.int64)))

    classes = FASHION_CLASSES if req.name == "fashion-mnist" else tuple(str(i) for i in range(10))
    return RawData(split("train"), split("test"), classes, str(folder))
