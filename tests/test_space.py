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


TIED = """\
name: tied
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: 32}
  stages:
    count: 3
    depth: {int: [1, 2]}
    token_mixer:
      mixer: {token_hidden_dim: {choice: [8, 16]}}
    channel_mixer:
      mlp: {channel_hidden_dim: {ratio: {choice: [2, 4]}}}
    tie: [token_mixer, channel_mixer, depth]
"""


def test_random_draws_keep_a_tied_field_one_value_in_every_stage():
    """A tied field is one parameter: uniform draws (``space check``'s invalid share, the load-time probe)
    give every stage its value, as Optuna does, so they only ever see candidates of the space."""
    import random

    space = load_space(ROOT / "search_spaces" / "strip_mlp.yaml")
    widths = set()
    for seed in range(60):
        params, arch, err = space.sample_random(random.Random(seed))
        if arch is None:
            assert err.path == "stages[3].token_mixer.strip_width"
            continue
        mixers = {st.token_mixer for st in arch.stages}
        assert len(mixers) == 1, (seed, mixers)
        assert len({st.channel_mixer["channel_hidden_dim"] / st.dim for st in arch.stages}) == 1
        widths.add(arch.stages[0].token_mixer["strip_width"])
        assert params["arch.stages.token_mixer.strip.strip_width"] == arch.stages[0].token_mixer["strip_width"]
        assert space.contains(arch)
    assert widths == {1, 3, 5}


def test_grid_of_a_tied_space_holds_size_candidates_all_in_it(tmp_path):
    path = tmp_path / "tied.yaml"
    path.write_text(TIED)
    space = load_space(path)
    assert space.size() == 2 * 2 * 2
    grid = list(space.grid())
    assert len(grid) == space.size()
    assert len({a.digest() for a in grid}) == len(grid)
    assert all(space.contains(a) for a in grid)
    assert all(len({(st.depth, st.token_mixer, st.channel_mixer) for st in a.stages}) == 1 for a in grid)


def test_optuna_draws_of_a_tied_space_keep_their_digests():
    """Random-sampler draws of the shipped Strip space (four stages, two tied mixers), as before ties were
    kept outside Optuna too: a search's candidates and their digests did not change."""
    space = load_space(ROOT / "search_spaces" / "strip_mlp.yaml")
    digests = [a.digest() for _, a, _ in sample_candidates(space, 8, seed=0) if a is not None]
    assert digests == ["f17e5278ed2ea135", "61eb67dc65611731", "9091a2f08fdb1b12", "4095cd5e3e816395",
                       "25b8aa2c5c4c8e07", "10d1c3cddd16c081", "b87bd771889359ef", "9178f82139de1404"]


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
    assert tuple(space.globals_["stem.patch_size"].domain.values()) == (2, 4)


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


# -- `space check` rejects what the search would reject before launch ------------------------------------------

@pytest.mark.parametrize("old, new, line, path, fragment", [
    ("task: {dataset: digits,", "task: {dataset: imagenet,", 2, "task.dataset", "unknown dataset 'imagenet'"),
    ("num_classes: 10}", "num_classes: 10, objectives: [top5:max, macs:min]}", 2, "task.objectives",
     "unknown metric 'top5' (did you mean 'top1'?)"),
    ("num_classes: 10}", "num_classes: 10, objectives: [top1:max, accuracy:max]}", 2, "task.objectives",
     "unknown metric 'accuracy'"),
    ("num_classes: 10}", "num_classes: 10,\n       train: {epochs: 0}}", 3, "task.train.epochs",
     "must be a positive integer"),
    ("num_classes: 10}", "num_classes: 10,\n       train: {fraction: 2}}", 3, "task.train.fraction",
     "must be in (0, 1]"),
    ("num_classes: 10}", "num_classes: 10,\n       train: {adamw: turbo}}", 3, "task.train.adamw", "must be null"),
])
def test_space_check_and_search_dry_run_reject_the_same_task_mistakes(tmp_path, capsys, old, new, line, path,
                                                                       fragment):
    """The check and the search's pre-launch validation are one function (`mixnas.space.launch_check`):
    a dataset the registry lacks, an objective trials never report, a recipe TrainConfig refuses are
    refused by both, at the space's line."""
    from mixnas.cli import main

    f = tmp_path / "small.yaml"
    f.write_text(SMALL.replace(old, new, 1))
    answers = []
    for argv in (["space", "check", str(f), "--draws", "0"],
                 ["search", "--space", str(f), "--dry-run", "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        answers.append(err.split("error: ", 1)[1])
    assert answers[0] == answers[1]
    assert answers[0].startswith(f"{f}:{line}: {path}: "), answers[0]
    assert fragment in answers[0]
    assert not (tmp_path / "run").exists()


def test_space_check_and_search_dry_run_pass_together(tmp_path, capsys):
    from mixnas.cli import main

    f = tmp_path / "small.yaml"
    f.write_text(SMALL)
    assert main(["space", "check", str(f), "--draws", "50"]) == 0
    assert "passes the search's pre-launch checks" in capsys.readouterr().out
    assert main(["search", "--space", str(f), "--dry-run", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "dataset digits" in out and "nothing was written or trained" in out
    assert not (tmp_path / "run").exists()


def test_launch_check_names_the_flag_of_an_override(small):
    from mixnas.space import launch_check

    with pytest.raises(MixnasError, match=r"^--dataset: unknown dataset 'cifar11'"):
        launch_check(small, dataset="cifar11")
    with pytest.raises(MixnasError, match=r"^--objectives: unknown metric 'top5'"):
        launch_check(small, objectives="top5:max")
    with pytest.raises(MixnasError, match=r"^train config: epochs must be a positive integer"):
        launch_check(small, train={"epochs": -1})
    plan = launch_check(small, dataset="mnist", objectives="top1:max,params:min", train={"epochs": 2}, seed=3)
    assert (plan.dataset, [str(o) for o in plan.objectives]) == ("mnist", ["top1:max", "params:min"])
    assert plan.train["epochs"] == 2 and plan.train["seed"] == 3


def test_strip_space_invalid_share_and_its_cause():
    """About 1 in 6 of the shipped Strip space's draws are invalid by construction: a strip of width 5 on the
    1x1 token grid that patch size 4 leaves the last stage (32 / 4 / 2^3 = 1; widths up to 3 fit)."""
    from mixnas.space import invalid_share

    report = invalid_share(load_space(ROOT / "search_spaces" / "strip_mlp.yaml"), draws=400, seed=0)
    assert 0.12 < report.share < 0.24, report.share
    key, n, example = report.reasons[0]
    assert n == report.invalid and example.startswith("stages[3].token_mixer.strip_width: 5 reaches 2 rows away")
    values, invalid, draws = report.causes[0]
    assert values == {"arch.stages.token_mixer.strip.strip_width": 5, "arch.stem.patch_size": 4}
    assert invalid == draws == report.invalid


def test_space_check_prints_the_invalid_share(capsys):
    from mixnas.cli import main

    assert main(["space", "check", str(ROOT / "search_spaces" / "strip_mlp.yaml"), "--draws", "200"]) == 0
    out = capsys.readouterr().out
    assert "invalid draws: " in out and " of 200 uniform random draws (seed 0, " in out
    assert "arch.stages.token_mixer.strip.strip_width = 5, arch.stem.patch_size = 4" in out


def test_a_space_without_invalid_draws_says_so(small, capsys):
    from mixnas.space import invalid_share

    report = invalid_share(small, draws=50, seed=1)
    assert (report.invalid, report.reasons, report.causes) == (0, [], [])


def test_huge_int_range_is_refused_not_listed(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(SMALL.replace("depth: {int: [1, 3]}", "depth: {int: [1, 9000000000000]}"))
    with pytest.raises(MixnasError, match=r"s\.yaml:8: arch\.stages\.depth\.int: the range holds 9,000,000,000,000 values; allowed: at most"):
        load_space(f)
    f.write_text(SMALL.replace("depth: {int: [1, 3]}", "depth: {int: [1, 100000]}"))
    with pytest.raises(MixnasError, match=r"s\.yaml:8: arch\.stages\.depth: 100000 is above the maximum 64"):
        load_space(f)


# -- every ArchConfig option is a key of the language (issue 16) ---------------------------------------------

LATER_FIELDS = """\
name: later_fields
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}
arch:
  layout: isotropic
  stem: {patch_size: 2, dim: 32, kind: {choice: [conv, cross_scale]}}
  stages:
    count: 2
    depth: 1
    layer_scale: {choice: [0.0, 0.1]}
    token_norm: {choice: [same, none]}
    token_mixer: {mixer: {token_hidden_dim: 16}}
    channel_mixer: {mlp: {channel_hidden_dim: 64}}
    tie: [token_mixer, channel_mixer, layer_scale]
"""


def test_layer_scale_token_norm_and_stem_kind_are_searched(tmp_path):
    path = tmp_path / "later.yaml"
    path.write_text(LATER_FIELDS)
    space = load_space(path)
    names = {s.name for s in space.params()}
    assert {"arch.stem.kind", "arch.stages.layer_scale", "arch.stages[0].token_norm",
            "arch.stages[1].token_norm"} <= names
    assert space.size() == 2 * 2 * 2 * 2
    archs = [a for _, a, _ in sample_candidates(space, 40, seed=0) if a is not None]
    assert len(archs) == 40
    assert {a.stem.kind for a in archs} == {"conv", "cross_scale"}
    assert {a.stages[0].layer_scale for a in archs} == {0.0, 0.1}
    assert all(a.stages[0].layer_scale == a.stages[1].layer_scale for a in archs)  # tied
    assert {(a.stages[0].token_norm, a.stages[1].token_norm) for a in archs} == {
        ("same", "same"), ("same", "none"), ("none", "same"), ("none", "none")}
    assert all(space.contains(a) for a in archs)
    params = {"arch.stem.kind": "cross_scale", "arch.stages.layer_scale": 0.1, "arch.stages[0].token_norm": "none",
              "arch.stages[1].token_norm": "same"}
    arch = space.sample(FixedTrial(params))
    assert (arch.stem.kind, arch.stages[1].layer_scale, arch.stages[0].token_norm) == ("cross_scale", 0.1, "none")
    assert space.params_of(arch) == params
    plain = next(a for a in archs if a.stem.kind == "conv" and a.stages[0].layer_scale == 0.0)
    for built in (plain, arch):
        model = build_model(built).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    assert "layer_scale" not in plain.to_dict()["stages"][0]  # at its default: the canonical form of before


@pytest.mark.parametrize("text, line, message", [
    ("kind: {choice: [conv, crossscale]}", 5, "arch.stem.kind: 'crossscale' is not allowed (did you mean "
                                              "'cross_scale'?); allowed: conv, cross_scale"),
    ("padding: -1", 5, "arch.stem.padding: -1 is below the minimum 0"),
])
def test_a_later_stem_field_is_checked_at_its_line(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(LATER_FIELDS.replace("kind: {choice: [conv, cross_scale]}", text))
    with pytest.raises(MixnasError) as info:
        load_space(path)
    assert str(info.value) == f"{path}:{line}: {message}"


def test_every_field_of_every_config_part_is_a_space_key(tmp_path):
    """Each field of the ArchConfig parts, written with its default (a searched choice where the field has
    choices), is accepted in its section and lands in the sampled ArchConfig."""
    from dataclasses import MISSING, fields

    from mixnas.config import ArchConfig, HeadSpec, InputSpec, StageSpec, StemSpec
    from mixnas.space import ARCH_KEYS, SECTION_KEYS, STAGES_KEYS, TASK_KEYS, field_kinds

    assert {f.name for f in fields(InputSpec)} <= set(TASK_KEYS)
    assert {f.name for f in fields(StemSpec)} == set(SECTION_KEYS["stem"])
    assert {f.name for f in fields(HeadSpec)} == set(SECTION_KEYS["head"])
    assert {f.name for f in fields(StageSpec)} <= set(STAGES_KEYS)
    assert {f.name for f in fields(ArchConfig)} - {"input", "name"} == set(ARCH_KEYS)
    for cls in (StemSpec, HeadSpec, StageSpec, ArchConfig):  # a text field lists its values for the domains
        for f in fields(cls):
            if field_kinds(cls)[f.name] is str and f.name != "name":
                assert f.metadata.get("choices"), f"{cls.__name__}.{f.name}"

    def value(cls, f):
        choices = f.metadata.get("choices")
        return f"{{choice: [{', '.join(choices[:2])}]}}" if choices else yaml_value(f.default)

    def yaml_value(v):
        return str(v).lower() if isinstance(v, bool) else str(v)

    base = {"patch_size": 2, "dim": 32}
    for cls, section in ((StemSpec, "stem"), (HeadSpec, "head"), (StageSpec, "stages"), (ArchConfig, "arch")):
        for f in fields(cls):
            if f.name in ("stages", "input", "stem", "head", "name", "token_mixer", "channel_mixer"):
                continue
            if section == "stem" and f.name in base:
                continue
            written = value(cls, f) if f.default is not MISSING else "1" if f.name == "depth" else "{rule: same}"
            stem = {**{k: str(v) for k, v in base.items()}, **({f.name: written} if section == "stem" else {})}
            head = {f.name: written} if section == "head" else {}
            stage = {"depth": "1", **({f.name: written} if section == "stages" else {})}
            top = {f.name: written} if section == "arch" and f.name != "layout" else {}
            text = ("task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10}\narch:\n"
                    + (f"  layout: {written}\n" if section == "arch" and f.name == "layout" else "")
                    + "".join(f"  {k}: {v}\n" for k, v in top.items())
                    + "  stem: {" + ", ".join(f"{k}: {v}" for k, v in stem.items()) + "}\n"
                    + ("  head: {" + ", ".join(f"{k}: {v}" for k, v in head.items()) + "}\n" if head else "")
                    + "  stages:\n    count: 1\n" + "".join(f"    {k}: {v}\n" for k, v in stage.items())
                    + "    token_mixer: {mixer: {token_hidden_dim: 8}}\n    channel_mixer: {mlp: {}}\n")
            path = tmp_path / f"{section}_{f.name}.yaml"
            path.write_text(text)
            space = load_space(path)
            arch = next(a for _, a, _ in sample_candidates(space, 1, seed=0) if a is not None)
            owner = {"stem": arch.stem, "head": arch.head, "stages": arch.stages[0], "arch": arch}[section]
            assert hasattr(owner, f.name)
            if f.metadata.get("choices") is None and f.default is not MISSING:
                assert getattr(owner, f.name) == f.default, (section, f.name)


PLUGIN_MIXERS = "      mixer: {token_hidden_dim: {choice: [8, 16]}}\n      attention: {num_heads: {choice: [2, 4]}}\n"


def test_a_space_searches_a_plugin_mixer_named_relative_to_the_file(tmp_path, monkeypatch, forget):
    from plugin_helpers import write_mixer

    folder = tmp_path / "lab"
    folder.mkdir()
    plugin = write_mixer(folder, name="plug_space")
    text = SMALL.replace("name: small\n", "name: small\nplugins: [mean_mixer.py]\n").replace(
        PLUGIN_MIXERS, "      plug_space: {scale: {choice: [0.5, 1.0]}}\n")
    (folder / "space.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # the path is relative to the space file, not the working directory
    space = load_space("lab/space.yaml")
    assert space.plugins == (str(plugin.resolve()),)
    assert space.raw["plugins"] == [str(plugin.resolve())]  # a saved copy of raw loads from anywhere
    archs = [a for _, a, _ in sample_candidates(space, 8, 0) if a is not None]
    assert {a.stages[0].token_mixer.name for a in archs} == {"plug_space"}
    assert {dict(a.stages[0].token_mixer.params)["scale"] for a in archs} == {0.5, 1.0}


def test_extends_adds_up_plugins_each_relative_to_the_file_that_names_it(tmp_path, forget):
    from plugin_helpers import write_mixer

    (tmp_path / "base").mkdir()
    first = write_mixer(tmp_path / "base", "first.py", name="plug_first", cls="First")
    second = write_mixer(tmp_path, "second.py", name="plug_second", cls="Second")
    (tmp_path / "base" / "base.yaml").write_text(SMALL.replace("name: small\n", "name: small\nplugins: first.py\n")
                                                 .replace(PLUGIN_MIXERS, "      plug_first: {}\n"))
    (tmp_path / "child.yaml").write_text("extends: base/base.yaml\nplugins: [second.py]\narch:\n  stages:\n"
                                         "    token_mixer:\n      plug_second: {scale: 2.0}\n")
    space = load_space(tmp_path / "child.yaml")
    assert space.plugins == (str(first.resolve()), str(second.resolve()))  # the parent's first, then the child's
    names = {a.stages[0].token_mixer.name for _, a, _ in sample_candidates(space, 12, 0) if a is not None}
    assert names == {"plug_first", "plug_second"}  # mixer families merge as before: both branches


def test_a_broken_plugin_of_a_space_is_located_at_its_line(tmp_path, forget):
    (tmp_path / "broken.py").write_text("x = 1\nraise ImportError('no such lab')\n")
    path = tmp_path / "space.yaml"
    path.write_text(SMALL.replace("name: small\n", "name: small\nplugins:\n  - broken.py\n"))
    with pytest.raises(MixnasError) as err:
        load_space(path)
    assert str(err.value) == (f"{path}:3: plugins[0]: plugin {(tmp_path / 'broken.py').resolve()}, line 2: "
                              "ImportError: no such lab")
    assert err.value.exit_code == 2
