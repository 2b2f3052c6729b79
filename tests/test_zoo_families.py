"""Families of issue 7 (part B): ViP, RaftMLP, Sparse-MLP (MoE), gMLP, ResMLP.

Beyond the shared suites (mixer contract, named models): the published ViP models satisfy the official
``segment_dim`` rule, every family trains one epoch at 32x32, the MoE's load-balancing loss reaches the
training loss, and the token-mixer search space produces every family.
"""

from __future__ import annotations

import pytest

from mixnas.registry import named_models


@pytest.mark.parametrize("name", ["vip_s7", "vip_m7", "vip_l7"])
@pytest.mark.parametrize("image_size", [224, 32])
def test_vip_presets_keep_the_official_segment_rule(name, image_size):
    from mixnas.mixers.permute import official_shape

    arch = named_models()[name].make(image_size=image_size)
    for stage, ctx in zip(arch.stages, arch.contexts()):
        assert official_shape(stage.token_mixer["segment_dim"], ctx), (stage, ctx)


# -- one epoch at 32x32 per family ------------------------------------------------------------------------


def _tiny(family: str):
    from mixnas.zoo.gmlp import gmlp_arch
    from mixnas.zoo.raft_mlp import raft_mlp_arch
    from mixnas.zoo.resmlp import resmlp_arch
    from mixnas.zoo.sparse_mlp import sparse_mixer_arch
    from mixnas.zoo.vip import vip_arch

    task = dict(image_size=32, in_channels=1, num_classes=10)
    return {
        "resmlp": lambda: resmlp_arch("tiny_resmlp", 2, dim=32, patch_size=4, **task),
        "gmlp": lambda: gmlp_arch("tiny_gmlp", 32, depth=2, patch_size=4, **task),
        "permute": lambda: vip_arch("tiny_vip", (32, 64), (1, 1), (8, 4), patch_size=4, **task),
        "raft": lambda: raft_mlp_arch("tiny_raft", (16, 32, 32, 64), (1, 1, 1, 1), **task),
        "moe": lambda: sparse_mixer_arch("tiny_sparse", 32, 1, 1, 16, 64, 4, patch_size=4, **task),
    }[family]()


@pytest.fixture(scope="module")
def digits32():
    from mixnas.data import load_dataset

    return load_dataset("digits", image_size=32, val_fraction=0.1, seed=0, test=True)


FAST = dict(epochs=1, batch_size=64, warmup_epochs=0.2, image_size=None)


@pytest.mark.parametrize("family", ["resmlp", "gmlp", "permute", "raft", "moe"])
def test_one_epoch_at_32x32(family, digits32):
    from mixnas.train import TrainConfig, train

    arch = _tiny(family)
    assert {s.token_mixer.name for s in arch.stages} >= {family}
    result = train(arch, digits32, TrainConfig(**FAST), progress=False)
    assert result.status == "completed", result
    assert result.epochs_completed == 1
    assert result.val_top1 > 10.0  # above chance (10 classes) after one epoch


def test_moe_aux_loss_reaches_the_training_loss(digits32, monkeypatch):
    import torch

    import mixnas.mixers.moe as moe
    from mixnas.network import build_model
    from mixnas.train import TrainConfig, aux_loss, aux_modules, train

    arch = _tiny("moe")
    model = build_model(arch).train()
    model(torch.randn(4, 1, 32, 32))
    extra = aux_loss(aux_modules(model))
    assert extra is not None and extra.requires_grad and float(extra.detach()) > 0
    model.eval()
    model(torch.randn(4, 1, 32, 32))
    assert aux_loss(aux_modules(model)) is None  # published while training only

    few = TrainConfig(**{**FAST, "fraction": 0.1})  # the bound below holds at every step: two steps will do
    base = train(arch, digits32, few, progress=False)
    monkeypatch.setattr(moe, "AUX_LOSS_WEIGHT", 100.0)
    heavy = train(arch, digits32, few, progress=False)
    assert len(heavy.curve) == 1 and heavy.curve[0].steps >= 2
    # two MoE layers, each E * sum f_e P_e >= 1 at any routing: at least 200 more per step
    assert heavy.curve[0].train_loss > base.curve[0].train_loss + 150


def test_moe_routing_is_deterministic_and_respects_capacity():
    import torch

    from mixnas.mixers.moe import SparseMoE

    torch.manual_seed(0)
    moe = SparseMoE(16, 32, num_experts=4, top_k=2, capacity_factor=0.5)
    x = torch.randn(40, 16)
    assert torch.equal(moe(x), moe(x))
    assert moe.capacity(40) == 10
    # a tiny capacity drops assignments: some rows get nothing at all
    small = SparseMoE(16, 32, num_experts=4, top_k=1, capacity_factor=0.1)
    out = small(x)
    assert (out.abs().sum(dim=1) == 0).sum() >= 40 - 4 * small.capacity(40)


@pytest.mark.parametrize("experts, top_k", [(4, 2), (3, 1), (8, 3)])
def test_moe_positions_for_onnx_export_are_the_sorted_ones(monkeypatch, experts, top_k):
    """Under torch.onnx.export the queue positions come from a running count, not a stable sort: the same
    positions, so the same routing, drops and outputs."""
    import torch

    from mixnas.mixers import moe

    torch.manual_seed(experts)
    choice = torch.randint(0, experts, (top_k * 50,))
    sorted_positions = moe._positions(choice, experts)
    for e in range(experts):  # the k-th assignment to expert e (in serving order) has position k
        assert sorted_positions[choice == e].tolist() == list(range(int((choice == e).sum())))
    layer = moe.SparseMoE(16, 32, num_experts=experts, top_k=top_k, capacity_factor=0.5).eval()
    x = torch.randn(50, 16)
    eager = layer(x)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert torch.equal(moe._positions(choice, experts), sorted_positions)
    assert torch.equal(layer(x), eager)


def test_token_mixer_space_produces_every_family():
    from pathlib import Path

    from mixnas.optuna_io import sample_candidates
    from mixnas.space import load_space

    space = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "token_mixers.yaml")
    seen = {arch.stages[0].token_mixer.name for _, arch, _ in sample_candidates(space, 80, seed=0)
            if arch is not None}
    assert {"resmlp", "gmlp", "permute", "raft", "moe"} <= seen, seen


@pytest.mark.parametrize("name", ["resmlp_12_224", "raftmlp_s", "vip_s7", "gmlp_s16_224"])
def test_new_block_options_round_trip_and_stay_out_of_default_digests(name):
    from dataclasses import replace

    from mixnas.config import ArchConfig

    arch = named_models()[name].make()
    back = ArchConfig.from_yaml(arch.to_yaml())
    assert back == arch and back.digest() == arch.digest()
    plain = replace(arch, stages=tuple(replace(s, layer_scale=0.0) for s in arch.stages),
                    stem=replace(arch.stem, kind="conv"))
    data = plain.to_dict()
    assert "kind" not in data["stem"] and all("layer_scale" not in s for s in data["stages"])
