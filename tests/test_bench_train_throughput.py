"""The throughput benchmark compares like with like (its numbers go to BENCHMARKS.md, never to a test)."""

from __future__ import annotations

import pytest
import torch

from bench._ref_strip import load_mixnas_weights
from bench.train_throughput import MIXERS, make_step, strip_shapes
from mixnas.network import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", MIXERS, ids=lambda s: s.label.split(" (")[0])
def test_reference_mixer_has_the_same_parameters_and_function_shape(shape):
    ours, ref = build_model(shape.arch()), shape.reference()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, shape.in_channels, shape.image_size, shape.image_size)
    assert ours(x).shape == ref(x).shape == (2, shape.num_classes)


@pytest.mark.parametrize("shape", strip_shapes(), ids=lambda s: s.label.split(" (")[0])
def test_reference_strip_mlp_computes_the_same_function(shape):
    """Same parameter count, and with mixnas's weights loaded across, the same outputs and gradients."""
    ours, ref = build_model(shape.arch()), shape.reference()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    with torch.no_grad():  # GRN's gamma and beta start at zero and BatchNorm at identity: make them count
        for name, p in ours.named_parameters():
            if name.endswith(("grn.gamma", "grn.beta")) or "bn." in name:
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
    load_mixnas_weights(ref, ours)
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    out_ours, out_ref = ours(x), ref(x)  # train mode: BatchNorm on batch statistics
    torch.testing.assert_close(out_ours, out_ref, rtol=1e-4, atol=1e-5)
    out_ours.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(ours.stem.weight.grad, ref.patch_embed.weight.grad, rtol=1e-3, atol=1e-6)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_the_timed_step_is_a_real_training_step():
    shape = MIXERS[0]
    model = shape.reference()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    make_step(model, False, x, y)()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
