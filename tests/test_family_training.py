"""One epoch of real training at 32x32 for each pyramid family of the zoo (tiny widths, on digits).

Each architecture is the family's named-model builder at a small width and one block per stage, so the
stems, downsampling layers, norms and mixers of the published models all take part (grids 8, 4, 2, 1).
"""

from __future__ import annotations

import math

import pytest
import torch

from mixnas.config import ArchConfig
from mixnas.train import TrainConfig, train
from mixnas.zoo.as_mlp import as_mlp_arch
from mixnas.zoo.hire_mlp import hire_mlp_arch
from mixnas.zoo.smlpnet import smlpnet_arch

TINY = {
    "asmlp": lambda: as_mlp_arch("tiny_asmlp", 16, (1, 1, 1, 1), image_size=32, in_channels=1, num_classes=10),
    "hire": lambda: hire_mlp_arch("tiny_hire", (16, 32, 48, 64), (1, 2, 1, 1), image_size=32, in_channels=1,
                                  num_classes=10),
    "smlp": lambda: smlpnet_arch("tiny_smlp", 16, (1, 1, 1, 1), image_size=32, in_channels=1, num_classes=10),
}


@pytest.fixture(scope="module")
def digits32():
    from mixnas.data import load_dataset

    return load_dataset("digits", image_size=32, in_channels=1, val_fraction=0.1, seed=0)


@pytest.mark.parametrize("family", sorted(TINY))
def test_one_epoch_at_32x32(family, digits32):
    arch: ArchConfig = TINY[family]()
    assert arch.input.image_size == 32 and arch.grids()[-1] == (1, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and immune to a busy shared machine
    try:
        result = train(arch, digits32, TrainConfig(epochs=1, batch_size=64, warmup_epochs=0.2), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "completed" and result.epochs_completed == 1
    last = result.curve[-1]
    assert math.isfinite(last.train_loss) and math.isfinite(last.val_loss)
    assert 0.0 <= last.val_top1 <= 100.0
