"""scikit-learn's bundled handwritten digits: 1,797 8x8 grey images, 10 classes, zero set-up.

Pixel values 0-16 are scaled to 0-255. The set has no official test split; :func:`load_dataset` carves a
fixed stratified one (see :mod:`mixnas.data`). Tiny and instant to load, it is what the tests train on.
"""

from __future__ import annotations

import numpy as np
import torch

from mixnas.data.base import LoadRequest, RawData, Split


def load_digits_dataset(req: LoadRequest) -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    split = Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64)))
    return RawData(split, None, tuple(str(i) for i in range(10)), "sklearn.datasets.load_digits")
