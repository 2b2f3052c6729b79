"""Zero-cost proxies: finite, deterministic, side-effect free, and ranking a real net above a degenerate one."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import MixnasError
from mixnas.network import build_model
from mixnas.proxies import naswot, proxy_batch, score_arch, score_model, synflow

DATA_PROXIES = ("synflow", "naswot", "grad_norm", "snip", "params", "macs")


pytestmark = pytest.mark.usefixtures("one_thread")


def mixer(dim: int, depth: int, token_hidden: int, channel_hidden: int) -> ArchConfig:
    stage = StageSpec(depth=depth, dim=dim, token_mixer=MixerSpec.of("mixer", token_hidden_dim=token_hidden),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=channel_hidden))
    return ArchConfig(stages=(stage,), input=InputSpec(16, 1, 10), stem=StemSpec(patch_size=4, dim=dim),
                      head=HeadSpec(), name=f"mixer{dim}x{depth}")


@pytest.fixture(scope="module")
def batch():
    from mixnas.data import load_dataset

    data = load_dataset("digits", image_size=16)
    return proxy_batch(data, batch_size=32, seed=0)


def test_scores_are_finite_deterministic_and_timed(batch):
    arch = mixer(48, 2, 24, 96)
    a = score_arch(arch, *batch, proxies=DATA_PROXIES, seed=0)
    b = score_arch(arch, *batch, proxies=DATA_PROXIES, seed=0)
    assert a.scores == b.scores
    assert all(math.isfinite(v) and v > 0 for v in a.scores.values()), a.scores
    assert set(a.seconds) == set(DATA_PROXIES) and all(s >= 0 for s in a.seconds.values())
    assert a.scores["params"] == sum(p.numel() for p in build_model(arch).parameters())
    from mixnas.complexity import complexity

    assert a.scores["macs"] == complexity(arch).macs
    assert score_arch(arch, *batch, proxies=DATA_PROXIES, seed=1).scores["snip"] != a.scores["snip"]
    json.dumps(a.to_dict())


def test_proxies_leave_the_model_untouched(batch):
    arch = mixer(32, 1, 16, 64)
    model = build_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    score_model(model, arch, *batch, proxies=DATA_PROXIES)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_real_net_outranks_a_degenerate_one(batch):
    good = mixer(64, 3, 32, 128)
    thin = mixer(4, 1, 2, 4)  # a 4-wide, 1-block bottleneck
    g = score_arch(good, *batch, proxies=DATA_PROXIES).scores
    t = score_arch(thin, *batch, proxies=DATA_PROXIES).scores
    for name in ("synflow", "naswot", "snip", "params", "macs"):
        assert g[name] > t[name], (name, g[name], t[name])


def test_naswot_sees_functional_activations_and_scores_a_collapsed_net_minus_infinity(batch):
    images, _ = batch
    arch = mixer(32, 1, 16, 64)
    model = build_model(arch)
    assert math.isfinite(naswot(model, images))
    with torch.no_grad():
        model.stem.weight.zero_()
        model.stem.bias.zero_()  # every image now looks the same to the network
    assert naswot(model, images) == -math.inf


def test_synflow_is_data_free_and_zero_for_a_cut_network():
    arch = mixer(32, 1, 16, 64)
    model = build_model(arch)
    assert synflow(model, (1, 16, 16)) > 0
    with torch.no_grad():
        model.head.weight.zero_()
    assert synflow(model, (1, 16, 16)) == 0.0
    assert score_arch(arch, None, None, proxies=("synflow", "params")).scores["params"] > 0


def test_unknown_proxy_and_missing_batch_are_clear_errors():
    arch = mixer(16, 1, 8, 32)
    with pytest.raises(MixnasError, match=r"unknown proxy 'synflo' \(did you mean 'synflow'\?\)"):
        score_arch(arch, None, None, proxies=("synflo",))
    with pytest.raises(MixnasError, match="proxies naswot need a batch of data"):
        score_arch(arch, None, None, proxies=("naswot",))


def test_cli_scores_architectures_and_space_candidates(tmp_path, capsys):
    from mixnas.cli import main

    arch_file = tmp_path / "m.yaml"
    arch_file.write_text(mixer(32, 1, 16, 64).to_yaml())
    space = tmp_path / "space.yaml"
    space.write_text("""
name: tiny
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: {choice: [16, 32]}}
  stages:
    count: 1
    depth: {int: [1, 2]}
    token_mixer: {mixer: {token_hidden_dim: {choice: [8, 16]}}}
    channel_mixer: mlp
""")
    code = main(["proxy", str(arch_file), str(space), "-n", "2", "--dataset", "digits", "--batch-size", "16"])
    out = capsys.readouterr().out
    assert code == 0
    assert "mixer32x1" in out and "tiny#0" in out and "tiny#1" in out
    assert "median time per candidate: synflow" in out
    code = main(["proxy", str(arch_file), "--dataset", "digits", "--json", "--proxies", "naswot,params"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and rows[0]["digest"] == mixer(32, 1, 16, 64).digest()
    assert set(rows[0]["scores"]) == {"naswot", "params"}
    assert ArchConfig.from_dict(rows[0]["arch"]) == mixer(32, 1, 16, 64)
    assert rows[0]["seed"] == 0 and rows[0]["code"]["mixnas"] and rows[0]["batch_size"] == 64
