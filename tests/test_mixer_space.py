"""``mixnas space from-mixer``: every declared parameter becomes a dimension, and the written space passes the
space checker and samples architectures that build."""

from __future__ import annotations

import optuna
import pytest
import torch
import yaml

from mixnas.cli import main
from mixnas.errors import MixnasError
from mixnas.mixer_space import find_mixer, write_space
from mixnas.network import build_model
from mixnas.optuna_io import sample_candidates
from mixnas.space import invalid_share, launch_check, load_space
from tests.zoo_plugin import PARAMS, write_plugin

pytestmark = pytest.mark.usefixtures("one_thread")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def branch(path, name: str) -> dict:
    return yaml.safe_load(path.read_text())["arch"]["stages"]["token_mixer"][name]


def check_space(path, n: int = 3) -> None:
    """What `mixnas space check` checks, then a few samples that build and run."""
    space = load_space(path)
    launch_check(space)
    assert invalid_share(space, 40, 0).share < 0.5
    archs = [arch for _, arch, _ in sample_candidates(space, n, 0) if arch is not None]
    assert len(archs) == n
    for arch in archs:
        out = build_model(arch)(torch.zeros(1, 1, 32, 32))
        assert out.shape == (1, 10)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    return write_plugin(folder, "zoo_space_mixer", "ZooSpaceMixer")


def test_every_param_of_a_plugin_mixer_becomes_a_dimension(plugin, tmp_path):
    out = tmp_path / "spaces" / "mine.yaml"
    path, family = write_space(f"{plugin}:ZooSpaceMixer", out)  # the class name finds it too
    assert path == out and family.name == "zoo_space_mixer"
    text = out.read_text()
    data = yaml.safe_load(text)
    assert len(data["plugins"]) == 1 and (out.parent / data["plugins"][0]).resolve() == plugin.resolve()
    got = branch(out, "zoo_space_mixer")
    assert set(got) | {"hidden"} == set(PARAMS) and "hidden" not in got
    assert "hidden: width-dependent default (128 at width 64): left at its default" in text
    assert got["kernel"] == {"choice": [1, 3, 5]}  # half, the default, double (6) moved to the odd 5
    assert got["scale"] == {"float": [0.25, 4.0], "log": True}
    assert got["gate"] == {"choice": [False, True]} and got["pool"] == {"choice": ["mean", "max"]}
    assert got["tag"] == "v1"  # text without choices: fixed
    arch = data["arch"]
    assert arch["stem"]["dim"]["choice"] and arch["stages"]["depth"]["choice"]  # the backbone is searched too
    check_space(out)


@pytest.mark.parametrize("name", ["strip", "smlp"])
def test_a_space_around_a_builtin_mixer_passes_the_space_checker(tmp_path, name):
    out = tmp_path / f"{name}.yaml"
    _, family = write_space(name, out)
    got = branch(out, name)
    declared = {p.name for p in family.params}
    width_dependent = {p.name for p in family.params if callable(p.default) and p.choices is None
                       and p.kind is not bool}
    assert set(got) == declared - width_dependent and "plugins" not in yaml.safe_load(out.read_text())
    assert all(isinstance(v, dict) or v is not None for v in got.values())
    check_space(out, 2)


def test_the_command_writes_the_file_and_says_what_it_searched(tmp_path, capsys):
    out = tmp_path / "hire.yaml"
    assert main(["space", "from-mixer", "hire", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: space 'hire_space' around token mixer 'hire': 5 of its 5 parameters" in printed
    assert main(["space", "check", str(out), "--draws", "20"]) == 0


def test_unknown_mixers_say_what_is_there(plugin):
    with pytest.raises(MixnasError, match=r"unknown mixer 'hiree' \(did you mean 'hire'\?\)"):
        find_mixer("hiree")
    with pytest.raises(MixnasError, match=f"unknown mixer 'Nope' in {plugin.resolve()}.*registered: zoo_space_mixer"):
        find_mixer(f"{plugin}:Nope")
    with pytest.raises(MixnasError, match="'moe' is registered as a token mixer .* and a channel mixer"):
        find_mixer("moe")
    assert find_mixer("moe", "channel")[0].role == "channel"


def test_another_dataset_sets_the_task_and_keeps_the_token_grid(tmp_path, capsys):
    out = tmp_path / "caltech.yaml"
    args = ["space", "from-mixer", "strip", "--out", str(out), "--dataset", "imagefolder", "--num-classes", "101"]
    assert main(args) == 0
    written = yaml.safe_load(out.read_text())
    assert {k: written["task"][k] for k in ("dataset", "image_size", "in_channels", "num_classes")} == \
        {"dataset": "imagefolder", "image_size": 64, "in_channels": 3, "num_classes": 101}
    assert written["arch"]["stem"]["patch_size"] == 8  # 64 / 8: the 8x8 grid the parameters were probed on
    header = " ".join(out.read_text().replace("#", " ").split())
    assert "--dataset imagefolder --num-classes 101`" in header  # the header says how it was written
    space = load_space(out)
    assert (space.task.image_size, space.task.num_classes) == (64, 101)
    assert main(["space", "from-mixer", "strip", "--out", str(tmp_path / "c100.yaml"), "--dataset", "cifar100",
                 "--image-size", "64"]) == 0
    c100 = yaml.safe_load((tmp_path / "c100.yaml").read_text())
    assert (c100["task"]["num_classes"], c100["task"]["in_channels"], c100["arch"]["stem"]["patch_size"]) == (100, 3, 8)


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "imagefolder"], "has as many classes as its folder: pass --num-classes N"),
    (["--image-size", "60"], "--image-size 60: must be a positive multiple of 8"),
    (["--dataset", "cifar"], "unknown dataset 'cifar' (did you mean 'cifar10'?)"),
    (["--num-classes", "1"], "--num-classes must be at least 2"),
])
def test_a_task_that_cannot_be_written_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "space.yaml"
    assert main(["space", "from-mixer", "strip", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()
