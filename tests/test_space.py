"""The search-space language: located errors, define-by-run sampling, replay, grid, size, contains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from optuna.trial import FixedTrial

from mixnas.errors import MixnasError
from mixnas.network import build_model
from mixnas.optuna_io import sample_candidates
from mixnas.space import InvalidCandidate, load_space

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((Path(__file__).parent / "space_corpus").glob("*.yaml"))
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))

SMALL = """\
name: small
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}
arch:
  layout: isotropic
  stem: {patch_size: {choice: [2, 4]}, dim: {choice: [32, 64]}}
  stages:
    count: 1
    depth: {int: [1, 3]}
    token_mixer:
      mixer: {token_hidden_dim: {choice: [8, 16]}}
      attention: {num_heads: {choice: [2, 4]}}
    channel_mixer:
      mlp: {channel_hidden_dim: {ratio: {choice: [2, 4]}}}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return load_space(path)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_malformed_space_gives_one_located_line(path, monkeypatch):
    monkeypatch.chdir(path.parent)
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: line ")
    line, expected = header.removeprefix("# expect: line ").split(": ", 1)
    with pytest.raises(MixnasError) as info:
        load_space(path.name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path.name}:{line}: "), message
    assert expected in message


@pytest.mark.parametrize("name", ["unknown_mixer_param", "python_tag", "duplicate_keys"])
def test_cli_space_check_exits_2_with_the_located_line(name):
    path = Path("tests/space_corpus") / f"{name}.yaml"
    proc = subprocess.run([sys.executable, "-m", "mixnas.cli", "space", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert f"{path}:" in proc.stderr


def test_sampling_is_deterministic_per_seed(small):
    def digests(seed):
        return [a.digest() for _, a, _ in sample_candidates(small, 12, seed) if a is not None]

    assert digests(3) == digests(3)
    assert digests(3) != digests(4)


def test_fixed_trial_replays_exactly(small):
    for params, arch, _ in sample_candidates(small, 10, seed=1):
        assert small.sample(FixedTrial(params)) == arch


def test_parameter_names_are_yaml_paths_distinct_per_branch(small):
    names = [s.name for s in small.params()]
    assert len(names) == len(set(names))
    assert "arch.stages.token_mixer.mixer.token_hidden_dim" in names
    assert "arch.stages.token_mixer.attention.num_heads" in names
    assert "arch.stages.token_mixer" in names


def test_size_grid_and_contains(small):
    # 2 patch x 2 dim x 3 depth x (2 + 2 token branches) x 2 ratios
    assert small.size() == 2 * 2 * 3 * 4 * 2
    grid = list(small.grid())
    assert len(grid) == small.size()
    assert len({a.digest() for a in grid}) == len(grid)
    assert all(small.contains(a) for a in grid[::7])
    sub = list(small.grid(fixed={"arch.stem.dim": 64, "arch.stages.token_mixer": "mixer"}))
    assert len(sub) == 2 * 3 * 2 * 2
    assert all(a.stem.dim == 64 and a.stages[0].token_mixer.name == "mixer" for a in sub)
    from mixnas.zoo.mlp_mixer import mixer_arch

    outside = mixer_arch("x", 4, 64, 5, 8, 128, image_size=16, in_channels=1, num_classes=10)
    assert not small.contains(outside)  # depth 5 is outside int [1, 3]


def test_ratio_widths_follow_the_stage_width(small):
    for _, arch, _ in sample_candidates(small, 10, seed=0):
        stage = arch.stages[0]
        assert stage.channel_mixer["channel_hidden_dim"] in (2 * stage.dim, 4 * stage.dim)


def test_invalid_candidate_is_reported_not_built(tmp_path):
    path = tmp_path / "heads.yaml"
    path.write_text(SMALL.replace("{num_heads: {choice: [2, 4]}}", "{num_heads: {choice: [2, 3]}}"))
    space = load_space(path)
    params = {"arch.stem.patch_size": 4, "arch.stem.dim": 32, "arch.stages.depth": 1,
              "arch.stages.token_mixer": "attention", "arch.stages.token_mixer.attention.num_heads": 3,
              "arch.stages.channel_mixer.mlp.channel_hidden_dim": 2}
    with pytest.raises(InvalidCandidate) as info:
        space.sample(FixedTrial(params))
    assert "stages[0].token_mixer.num_heads" in str(info.value)


def test_extends_composes_spaces(tmp_path):
    (tmp_path / "base.yaml").write_text(SMALL)
    (tmp_path / "child.yaml").write_text("extends: base.yaml\narch:\n  stem: {dim: 48}\n")
    space = load_space(tmp_path / "child.yaml")
    assert space.name == "child"
    assert all(a.stem.dim == 48 for _, a, _ in sample_candidates(space, 5, 0) if a is not None)
    assert space.globals_["stem.patch_size"].domain.values() == (2, 4)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_space_samples_200_valid_candidates_and_some_build(path):
    text = path.read_text()
    assert text.startswith("#"), "a shipped space starts with a comment header saying what it answers"
    space = load_space(path)
    archs = [a for _, a, _ in sample_candidates(space, 200, seed=0) if a is not None]
    assert len(archs) == 200
    for arch in archs[:: 50]:
        model = build_model(arch).eval()
        x = torch.randn(2, arch.input.in_channels, arch.input.image_size, arch.input.image_size)
        with torch.no_grad():
            assert model(x).shape == (2, arch.input.num_classes)
