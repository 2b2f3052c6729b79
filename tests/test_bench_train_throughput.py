"""The throughput benchmark compares like with like (its numbers go to BENCHMARKS.md, never to a test)."""

from __future__ import annotations

import pytest
import torch

from bench.train_throughput import MIXERS, make_step
from mixnas.network import build_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("shape", MIXERS, ids=lambda s: s.label.split(" (")[0])
def test_reference_mixer_has_the_same_parameters_and_function_shape(shape):
    ours, ref = build_model(shape.arch()), shape.reference()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, shape.in_channels, shape.image_size, shape.image_size)
    assert ours(x).shape == ref(x).shape == (2, shape.num_classes)


def test_the_timed_step_is_a_real_training_step():
    shape = MIXERS[0]
    model = shape.reference()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    make_step(model, False, x, y)()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
