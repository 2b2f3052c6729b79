"""Golden complexity of every named model, and every preset trains on a small task.

* Parameter count of ``build_model(model.make())`` against ``model.reported.params``: exact for the
  families that reproduce timm's PyTorch reference, within 0.1 % otherwise. Counted on the meta device
  (no memory, no initialisation), so Mixer-L/16's 208M parameters cost nothing.
* MACs (:func:`mixnas.complexity.complexity`, cached) within 1 % of ``model.reported.macs`` where one is
  reported.
* Every preset's factory at 32x32 with 10 classes builds, runs forward and backward (shape level, on the
  meta device); the smallest preset of each (family, patch size) does so for real on the CPU.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch.nn import functional as F

from mixnas.config import ArchConfig
from mixnas.network import build_model
from mixnas.registry import named_models

MODELS = named_models()
NAMES = sorted(MODELS)
EXACT_PARAM_FAMILIES = {"mixer", "attention", "strip", "resmlp", "gmlp", "permute", "raft"}  # exact counts of the official implementations
PARAM_REL_TOL = 1e-3
MAC_REL_TOL = 1e-2
SMALL_TASK = {"image_size": 32, "num_classes": 10}


def meta_param_count(arch: ArchConfig) -> int:
    with torch.device("meta"):
        net = build_model(arch)
    return sum(p.numel() for p in net.parameters())


@functools.cache
def small_task_representatives() -> list[str]:
    """The smallest preset (parameters at 32x32) of each (family, layout, patch size)."""
    best: dict[tuple, tuple[int, str]] = {}
    for name in NAMES:
        arch = MODELS[name].make(**SMALL_TASK)
        key = (MODELS[name].family, arch.layout, arch.stem.patch_size)
        best[key] = min(best.get(key, (float("inf"), "")), (meta_param_count(arch), name))
    return sorted(name for _, name in best.values())


@pytest.mark.parametrize("name", [n for n in NAMES if MODELS[n].reported.params is not None])
def test_parameter_count_matches_the_reported_one(name):
    model = MODELS[name]
    found, reported = meta_param_count(model.make()), model.reported.params
    if model.family in EXACT_PARAM_FAMILIES:
        assert model.reported.params_exact
        assert found == reported, f"{name}: {found:,} parameters, reported {reported:,} ({model.reported.source})"
    rel = abs(found - reported) / reported
    assert rel <= PARAM_REL_TOL, (f"{name}: {found:,} parameters, reported {reported:,} "
                                  f"({rel:.3%} off; {model.reported.source})")
    assert not model.reported.mismatches(found, model.reported.macs or 0)


@pytest.mark.parametrize("name", [n for n in NAMES if MODELS[n].reported.macs is not None])
def test_macs_match_the_reported_ones(name):
    from mixnas.complexity import complexity

    model = MODELS[name]
    found, reported = complexity(model.make()).macs, model.reported.macs
    rel = abs(found - reported) / reported
    # 1%, or the rounding of the printed figure (Strip-MLP T*: 2.531 G against a printed "2.5G")
    assert abs(found - reported) <= max(MAC_REL_TOL * reported, model.reported.macs_tolerance())
    assert rel <= 0.05, (f"{name}: {found / 1e9:.3f} GMACs, reported {reported / 1e9:.3f} "
                         f"({rel:.2%} off; {model.reported.source})")


def test_mac_tolerance_covers_the_rounding_of_the_printed_figure():
    from mixnas.registry import Reported

    printed = Reported(None, 2_500_000_000, "a paper printing 2.5G")
    assert printed.macs_tolerance() == 50_000_000
    assert not printed.mismatches(0, 2_531_000_000)
    assert printed.mismatches(0, 2_560_000_000)
    precise = Reported(None, 12_620_000_000, "12.62 G")
    assert precise.macs_tolerance() == 0.01 * 12_620_000_000


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_builds_for_a_small_task(name):
    arch = MODELS[name].make(**SMALL_TASK)
    assert arch.input.image_size == 32 and arch.input.num_classes == 10
    with torch.device("meta"):
        net = build_model(arch)
        images = torch.empty(2, arch.input.in_channels, 32, 32, requires_grad=True)
    out = net(images)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert images.grad is not None and images.grad.shape == images.shape
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", small_task_representatives())
def test_forward_and_backward_on_a_small_task(name):
    arch = MODELS[name].make(**SMALL_TASK)
    net = build_model(arch, seed=0).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, arch.input.in_channels, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (2,), generator=gen)
    logits = net(images)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    F.cross_entropy(logits, labels).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
