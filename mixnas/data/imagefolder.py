"""ImageFolder: one sub-folder of images per class (Caltech-101's ``101_ObjectCategories``, ...).

Two layouts are accepted under the root given with ``--data-dir``:

* ``ROOT/<class>/<image>``: one labelled set; :func:`mixnas.data.load_dataset` carves a fixed stratified
  test split from it, then the seeded validation split from the rest;
* ``ROOT/train/<class>/...`` with ``ROOT/test/<class>/...`` (or ``val/``): the given split is kept.

Images come in every size, so they are decoded straight to the task's size (shorter side resized to
``image_size`` with bilinear filtering, then centre-cropped) and to grey or RGB. Decoding is the slow part,
so the decoded tensors are cached in the user cache folder under a key made of the root, every file's
name, size and modification time, the size and the colour mode: a changed folder is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mixnas.data.base import LoadRequest, RawData, Split, dataset_cache_dir
from mixnas.errors import MixnasError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
SPLIT_NAMES = ("train", "test", "val")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def scan(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and ``(file, label)`` pairs under ``root``; a bad layout raises a one-line error."""
    dirs = _subdirs(root)
    allowed = f"one sub-folder per class holding {', '.join(EXTENSIONS)} files"
    if not dirs:
        loose = _images_in(root)
        what = f"{len(loose)} images directly in the folder" if loose else "no sub-folders"
        raise MixnasError(f"{root}: {what}; expected {allowed}")
    names = [d.name for d in dirs]
    if classes is None:
        if len(names) < 2:
            raise MixnasError(f"{root}: only one class folder ({names[0]}); expected at least two, {allowed}")
        classes = names
    else:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise MixnasError(f"{root}: class folder {unknown[0]!r} is not among the training classes")
    items = []
    for d in dirs:
        files = _images_in(d)
        if not files:
            raise MixnasError(f"{d}: no images in this class folder; expected {', '.join(EXTENSIONS)} files")
        label = classes.index(d.name)
        items += [(f, label) for f in files]
    return classes, items


def _decode(path: Path, size: int, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
            arr = np.array(img, dtype=np.uint8)  # a writable copy
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise MixnasError(f"{path}: cannot decode the image ({err})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_all(items: list[tuple[Path, int]], size: int, mode: str, desc: str) -> Split:
    from tqdm import tqdm

    channels = 1 if mode == "L" else 3
    images = torch.empty(len(items), channels, size, size, dtype=torch.uint8)
    for i, (path, _) in enumerate(tqdm(items, desc=desc, unit="img", disable=not sys.stderr.isatty(),
                                       leave=False)):
        images[i] = torch.from_numpy(_decode(path, size, mode))
    return Split(images, torch.tensor([label for _, label in items], dtype=torch.int64))


def _cache_key(root: Path, parts: dict[str, list[tuple[Path, int]]], size: int, mode: str) -> str:
    listing = {k: [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns, y) for p, y in v]
               for k, v in parts.items()}
    blob = json.dumps([str(root.resolve()), size, mode, listing], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load_imagefolder(req: LoadRequest) -> RawData:
    if req.data_dir is None:
        raise MixnasError("imagefolder: give the root folder with --data-dir ROOT (one sub-folder of images per "
                          "class, or train/ and test/ folders that each hold one per class)")
    root = Path(req.data_dir).expanduser()
    if not root.is_dir():
        raise MixnasError(f"{root}: no such folder (imagefolder needs one sub-folder of images per class)")
    top = {d.name for d in _subdirs(root)}
    test_name = next((n for n in ("test", "val") if n in top), None)
    if "train" in top and test_name is not None and top <= set(SPLIT_NAMES):
        classes, train_items = scan(root / "train")
        _, test_items = scan(root / test_name, classes)
        parts = {"train": train_items, "test": test_items}
    else:
        classes, train_items = scan(root)
        parts = {"train": train_items}
    mode = "L" if req.in_channels == 1 else "RGB"
    key = _cache_key(root, parts, req.image_size, mode)
    cache = dataset_cache_dir("imagefolder") / f"{key}.pt"
    if cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            splits = {k: Split(blob[k]["images"], blob[k]["labels"]) for k in parts}
            return RawData(splits["train"], splits.get("test"), tuple(classes), str(root))
        except Exception:  # a damaged cache file is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    splits = {k: _decode_all(v, req.image_size, mode, f"decoding {k}") for k, v in parts.items()}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({k: {"images": s.images, "labels": s.labels} for k, s in splits.items()}, tmp)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only cache only costs decoding time
    return RawData(splits["train"], splits.get("test"), tuple(classes), str(root))
