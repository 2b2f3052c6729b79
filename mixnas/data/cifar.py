"""CIFAR-10 and CIFAR-100 in their standard "python version" (pickled batches), user-provided.

CIFAR-10: ``cifar-10-batches-py/`` with ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and
``batches.meta``. CIFAR-100: ``cifar-100-python/`` with ``train``, ``test`` and ``meta`` (the 100 fine labels
are used). Either the extracted folder or the original ``.tar.gz`` archive is read, from ``--data-dir``,
``$MIXNAS_DATA`` or the user cache folder.

The batches are pickles; they are read with an unpickler that only builds numpy arrays and plain
containers, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixnas.data.base import LoadRequest, RawData, Split, describe_dirs, search_dirs
from mixnas.errors import MixnasError


@dataclass(frozen=True)
class CifarLayout:
    folder: str
    archive: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str
    num_classes: int
    url: str


LAYOUTS = {
    "cifar10": CifarLayout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                           tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta",
                           "labels", "label_names", 10, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), "test", "meta",
                            "fine_labels", "fine_label_names", 100,
                            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(raw: bytes, where: str) -> dict[str, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # any decoding failure of a user file is reported as one line
        raise MixnasError(f"{where}: not a CIFAR python-version batch ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise MixnasError(f"{where}: not a CIFAR python-version batch (expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch(read: Callable[[str], bytes], name: str, where: str, layout: CifarLayout) -> Split:
    d = _unpickle(read(name), f"{where}/{name}")
    for key in ("data", layout.label_key):
        if key not in d:
            raise MixnasError(f"{where}/{name}: no {key!r} entry; keys: {', '.join(map(str, d))}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[layout.label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise MixnasError(f"{where}/{name}: expected N x 3072 uint8 rows and N labels, found {data.shape} and "
                          f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise MixnasError(f"{where}/{name}: labels must be 0-{layout.num_classes - 1}")
    images = torch.from_numpy(data.astype(np.uint8, copy=True)).view(-1, 3, 32, 32)
    return Split(images, torch.from_numpy(labels))


def _cat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))


def _reader(req: LoadRequest, layout: CifarLayout) -> tuple[Callable[[str], bytes], str, list[Path]]:
    """Find the batch folder or archive; return a function reading one member by name."""
    dirs = search_dirs(req.name, req.data_dir, (layout.folder,))
    needed = (*layout.train, layout.test)
    for d in dirs:
        if d.is_dir() and all((d / n).is_file() for n in needed):
            return (lambda n, d=d: (d / n).read_bytes()), str(d), dirs
    for d in dirs:
        archive = d / layout.archive
        if archive.is_file():
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                    missing = [n for n in needed if n not in members]
                    if missing:
                        raise MixnasError(f"{archive}: the archive lacks {', '.join(missing)}")
                    blobs = {n: tar.extractfile(members[n]).read() for n in (*needed, layout.meta)
                             if n in members}
            except (tarfile.TarError, OSError, EOFError) as err:
                raise MixnasError(f"{archive}: cannot read the archive: {err}") from None
            return blobs.__getitem__, str(archive), dirs
    raise MixnasError(f"{req.name}: no {layout.folder}/ folder (with {', '.join(needed)}) or {layout.archive} in "
                      f"{describe_dirs(dirs)}; download {layout.url} and put it, or the folder it holds, in "
                      "--data-dir or $MIXNAS_DATA")


def load_cifar(req: LoadRequest) -> RawData:
    """Load CIFAR-10 or CIFAR-100 (50k training and 10k test 32x32 RGB images)."""
    layout = LAYOUTS[req.name]
    read, where, _ = _reader(req, layout)
    train = _cat([_batch(read, n, where, layout) for n in layout.train])
    test = _batch(read, layout.test, where, layout)
    classes: tuple[str, ...] = tuple(str(i) for i in range(layout.num_classes))
    try:
        meta = _unpickle(read(layout.meta), f"{where}/{layout.meta}")
        names = meta.get(layout.names_key)
        if isinstance(names, list) and len(names) == layout.num_classes:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except (OSError, KeyError, MixnasError):
        pass  # the class names are a nicety; the labels are what matter
    return RawData(train, test, classes, where)
