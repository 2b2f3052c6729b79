"""ArchConfig: exact round trips, a digest that is stable across processes and releases, errors that name
the dotted path, safe YAML, and a pure ``build_model``."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mixnas.config import ArchConfig, MixerSpec, StageSpec
from mixnas.errors import ArchError, MixnasError
from mixnas.network import build_model
from mixnas.registry import named_models

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(named_models())

# Pinned digests: a change here means the canonical form changed, which invalidates every stored digest
# (caches, studies, result tables). Change them only on purpose, and say so in the commit.
GOLDEN_DIGESTS = {
    "mixer_b16_224": "e5d51256de98bd27",
    "vit_s16_224": "453a32a5eb51efdf",
}


def small_mixer() -> dict:
    """A small isotropic Mixer with every optional field omitted."""
    return {
        "input": {"image_size": 32, "num_classes": 10},
        "stem": {"patch_size": 4, "dim": 64},
        "stages": [{"depth": 2, "dim": 64, "token_mixer": "mixer", "channel_mixer": "mlp"}],
    }


def small_vit() -> dict:
    """A small ViT: class token, learned position embedding, attention."""
    return {
        "input": {"image_size": 32, "num_classes": 10},
        "stem": {"patch_size": 8, "dim": 64},
        "stages": [{"depth": 2, "dim": 64, "token_mixer": {"name": "attention", "num_heads": 2},
                    "channel_mixer": {"name": "mlp", "channel_hidden_dim": 128}}],
        "head": {"pool": "cls"},
        "class_token": True,
        "pos_embed": "learned",
    }


# -- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_named_model_is_labelled_with_its_name(name):
    assert named_models()[name].make().name == name


@pytest.mark.parametrize("name", MODELS)
def test_dict_round_trip_is_exact(name):
    arch = named_models()[name].make()
    data = arch.to_dict()
    json.dumps(data)  # plain data only
    back = ArchConfig.from_dict(copy.deepcopy(data))
    assert back == arch
    assert back.digest() == arch.digest()
    assert back.to_dict() == data


@pytest.mark.parametrize("name", MODELS)
def test_yaml_round_trip_is_exact(name):
    arch = named_models()[name].make()
    text = arch.to_yaml()
    back = ArchConfig.from_yaml(text)
    assert back == arch
    assert back.digest() == arch.digest()
    assert back.to_yaml() == text


# -- digest ------------------------------------------------------------------------------------------------


def test_digest_matches_the_pinned_values():
    models = named_models()
    found = {name: models[name].make().digest() for name in GOLDEN_DIGESTS}
    assert found == GOLDEN_DIGESTS, "the canonical form of ArchConfig changed: every stored digest is invalid"


def test_digest_is_stable_across_processes():
    here = {name: m.make().digest() for name, m in named_models().items()}
    seed = "271828" if os.environ.get("PYTHONHASHSEED") != "271828" else "314159"
    code = ("import json; from mixnas.registry import named_models; "
            "print(json.dumps({n: m.make().digest() for n, m in named_models().items()}))")
    env = {**os.environ, "PYTHONHASHSEED": seed,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here


@pytest.mark.parametrize("make", [small_mixer, small_vit])
def test_defaults_spelled_out_or_omitted_give_one_config(make):
    omitted = ArchConfig.from_dict(make())
    spelled = omitted.to_dict()  # every default written out, mixer parameters included
    assert ArchConfig.from_dict(spelled) == omitted
    assert ArchConfig.from_dict(spelled).digest() == omitted.digest()
    # key order does not matter either
    shuffled = {k: spelled[k] for k in reversed(list(spelled))}
    assert ArchConfig.from_dict(shuffled).digest() == omitted.digest()


def test_defaults_are_resolved_into_the_config():
    arch = ArchConfig.from_dict(small_mixer())
    assert arch.stages[0].token_mixer == MixerSpec.of("mixer", token_hidden_dim=32)
    assert arch.stages[0].channel_mixer == MixerSpec.of("mlp", channel_hidden_dim=256)
    data = small_mixer()
    data["stages"][0]["token_mixer"] = {"name": "mixer", "token_hidden_dim": 32}
    assert ArchConfig.from_dict(data).digest() == arch.digest()
    data["stages"][0]["token_mixer"] = {"name": "mixer", "token_hidden_dim": 16}
    assert ArchConfig.from_dict(data).digest() != arch.digest()


def test_integer_spelling_of_a_rate_gives_the_same_digest():
    arch = ArchConfig.from_dict(small_mixer())
    data = small_mixer()
    data["head"] = {"dropout": 0}
    data["stages"][0]["drop_path"] = 0
    assert ArchConfig.from_dict(data) == arch
    assert ArchConfig.from_dict(data).digest() == arch.digest()


def test_name_is_not_part_of_the_digest():
    arch = named_models()["vit_s16_224"].make()
    assert replace(arch, name="something else").digest() == arch.digest()
    data = arch.to_dict()
    del data["name"]
    assert ArchConfig.from_dict(data).digest() == arch.digest()


def test_the_task_is_part_of_the_digest():
    arch = ArchConfig.from_dict(small_mixer())
    assert arch.with_task(num_classes=100).digest() != arch.digest()
    assert arch.with_task(image_size=64).digest() != arch.digest()


# -- errors name the dotted path ----------------------------------------------------------------------------


def _set(path: list, value):
    def mutate(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _two_stages(data: dict) -> None:
    data["stages"].append({"depth": 1, "dim": 64, "token_mixer": "mixer", "channel_mixer": "mlp",
                           "downsample": "conv2x2"})


ERROR_CASES = [
    # (id, mutation of small_mixer(), path, fragment of the message)
    ("unknown top-level key", _set(["layuot"], "pyramid"), "layuot", "unknown key (did you mean 'layout'?)"),
    ("unknown stage key", _set(["stages", 0, "dpeth"], 2), "stages[0].dpeth",
     "unknown key (did you mean 'depth'?)"),
    ("unknown stem key", _set(["stem", "patch"], 4), "stem.patch", "unknown key (did you mean 'patch_size'?)"),
    ("bad type", _set(["input", "image_size"], "32"), "input.image_size", "expected an integer, found '32'"),
    ("bad bool", _set(["class_token"], "yes"), "class_token", "expected true or false"),
    ("bad stage value", _set(["stages", 0, "depth"], 0), "stages[0].depth", "must be at least 1"),
    ("bad mixer parameter type", _set(["stages", 0, "token_mixer"], {"name": "mixer", "token_hidden_dim": 1.5}),
     "stages[0].token_mixer.token_hidden_dim", "expected an integer, found 1.5"),
    ("patch size does not divide", _set(["stem", "patch_size"], 5), "stem.patch_size",
     "patch size 5 does not divide the image size 32"),
    ("isotropic with downsampling", _two_stages, "stages[1].downsample", "an isotropic layout keeps one resolution"),
    ("unknown token mixer", _set(["stages", 0, "token_mixer"], "mixr"), "stages[0].token_mixer.name",
     "unknown token mixer 'mixr' (did you mean 'mixer'?)"),
    ("unknown channel mixer", _set(["stages", 0, "channel_mixer"], "mpl"), "stages[0].channel_mixer.name",
     "unknown channel mixer 'mpl' (did you mean 'mlp'?)"),
    ("unknown mixer parameter", _set(["stages", 0, "token_mixer"], {"name": "mixer", "hidden_dim": 8}),
     "stages[0].token_mixer.hidden_dim", "unknown parameter of token mixer 'mixer' (did you mean 'token_hidden_dim'?)"),
    ("heads do not divide the width", _set(["stages", 0, "token_mixer"], {"name": "attention", "num_heads": 5}),
     "stages[0].token_mixer.num_heads", "width 64 is not divisible by num_heads=5"),
    ("non-string mixer parameter name", _set(["stages", 0, "token_mixer"], {"name": "mixer", 1: 2}),
     "stages[0].token_mixer.1", "must be a string"),
]


@pytest.mark.parametrize("mutate, path, fragment", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_from_dict_errors_name_the_path(mutate, path, fragment):
    data = small_mixer()
    mutate(data)
    with pytest.raises(ArchError) as info:
        ArchConfig.from_dict(data)
    err = info.value
    assert isinstance(err, MixnasError)
    assert err.path == path
    assert str(err).startswith(f"{path}: "), str(err)
    assert fragment in str(err)


def test_missing_stages_is_reported():
    data = small_mixer()
    del data["stages"]
    with pytest.raises(ArchError, match=r"^stages: missing"):
        ArchConfig.from_dict(data)


def test_from_yaml_errors_start_with_the_file_name_and_line():
    text = "stem: {patch_size: 4, dim: 64}\nstages:\n- {depth: 1, dim: 64, token_mixer: mixr, channel_mixer: mlp}\n"
    with pytest.raises(ArchError) as info:
        ArchConfig.from_yaml(text, where="my_arch.yaml")
    assert str(info.value).startswith("my_arch.yaml:3: stages[0].token_mixer.name: unknown token mixer 'mixr'")


ARCH_FILE = """\
name: located
layout: isotropic
input: {image_size: 32, in_channels: 3, num_classes: 10}
stem:
  patch_size: 4
  dim: 64
stages:
  - depth: 2
    dim: 64
    token_mixer:
      name: attention
      num_heads: 4
    channel_mixer: mlp
head: {pool: mean}
"""


@pytest.mark.parametrize("old, new, line, path, fragment", [
    ("num_heads: 4", "num_heads: 5", 12, "stages[0].token_mixer.num_heads", "not divisible by num_heads=5"),
    ("num_heads: 4", "num_headz: 4", 12, "stages[0].token_mixer.num_headz", "unknown parameter"),
    ("    dim: 64\n    token", "    dim: 65\n    token", 9, "stages[0].dim", "isotropic layout keeps one width"),
    ("patch_size: 4", "patch_size: 5", 5, "stem.patch_size", "does not divide the image size 32"),
    ("  - depth: 2", "  - depth: 0", 8, "stages[0].depth", "must be at least 1"),
    ("  - depth: 2", "  - depth: 100000", 8, "stages[0].depth", "must be at most 64"),
    ("name: attention", "name: attentoin", 11, "stages[0].token_mixer.name", "did you mean 'attention'"),
    ("channel_mixer: mlp", "channel_mixer: mpl", 13, "stages[0].channel_mixer.name", "unknown channel mixer"),
    ("head: {pool: mean}", "head: {pool: cls}", 14, "head.pool", "needs class_token"),
    ("head: {pool: mean}", "heads: {pool: mean}", 14, "heads", "unknown key (did you mean 'head'?)"),
    ("num_heads: 4", "num_heads: 4\n      dropout: .nan", 12, "stages[0].token_mixer.num_heads", "finite"),
])
def test_arch_file_errors_are_located_by_line(tmp_path, old, new, line, path, fragment):
    """A mistake in an ArchConfig file names the file, the line and the dotted path, as a space's do."""
    from mixnas.models import load_arch_file

    f = tmp_path / "located.yaml"
    f.write_text(ARCH_FILE.replace(old, new, 1))
    with pytest.raises(MixnasError) as info:
        load_arch_file(f)
    message = str(info.value)
    assert "\n" not in message
    if fragment == "finite":  # refused by the reader, at the value's line
        assert message.startswith(f"{f}:13: ") and "not a finite number" in message, message
        return
    assert message.startswith(f"{f}:{line}: {path}: "), message
    assert fragment in message


def test_arch_file_entry_of_a_collection_is_located(tmp_path):
    """``pareto.yaml#N``: the error names the entry's YAML path and its line in the collection."""
    from mixnas.models import load_arch_file

    arch = "\n".join("    " + line for line in ARCH_FILE.replace("num_heads: 4", "num_heads: 3").splitlines())
    f = tmp_path / "pareto.yaml"
    f.write_text(f"study: s\npareto:\n- trial: 7\n  arch:\n{arch}\n")
    with pytest.raises(MixnasError) as info:
        load_arch_file(f"{f}#7")
    assert str(info.value).startswith(f"{f}:16: pareto[0].arch.stages[0].token_mixer.num_heads: "), str(info.value)


def test_arch_file_cli_gives_one_located_line(tmp_path, capsys):
    from mixnas.cli import main

    f = tmp_path / "located.yaml"
    f.write_text(ARCH_FILE.replace("num_heads: 4", "num_heads: 5"))
    assert main(["inspect", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}:12: stages[0].token_mixer.num_heads: " in err


@pytest.mark.parametrize("value, fragment", [
    ("1.0e+400", "not a finite number"), (".nan", "not a finite number"), ("9" * 30, "out of range"),
    ("9" * 5000, "out of range"), ("100000", "must be at most 8192"), ("-3", "must be at least 1"),
])
def test_numbers_out_of_range_are_refused_at_their_line(tmp_path, value, fragment):
    from mixnas.models import load_arch_file

    f = tmp_path / "a.yaml"
    f.write_text(ARCH_FILE.replace("  dim: 64", f"  dim: {value}", 1))
    with pytest.raises(MixnasError, match=fragment) as info:
        load_arch_file(f)
    assert str(info.value).startswith(f"{f}:6: "), str(info.value)


def test_direct_construction_is_validated_too():
    with pytest.raises(ArchError, match=r"^stages\[0\]\.token_mixer\.num_heads: "):
        ArchConfig(stages=(StageSpec(depth=1, dim=768, token_mixer=MixerSpec.of("attention", num_heads=7),
                                     channel_mixer=MixerSpec.of("mlp")),))


# -- YAML is loaded safely ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "!!python/object/apply:os.getcwd []\n",
    "name: !!python/object/apply:os.getcwd []\nstages: []\n",
    "name: !!python/object:collections.OrderedDict {}\nstages: []\n",
])
def test_yaml_with_a_python_tag_is_refused(text):
    with pytest.raises(MixnasError, match="tag not allowed"):
        ArchConfig.from_yaml(text, where="evil.yaml")


def test_yaml_that_is_not_a_mapping_is_refused():
    with pytest.raises(MixnasError, match="expected a mapping"):
        ArchConfig.from_yaml("- 1\n- 2\n")


# -- build_model is pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [small_mixer, small_vit])
def test_build_model_is_pure(make):
    arch = ArchConfig.from_dict(make())
    torch.manual_seed(1234)
    random.seed(1234)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    first = build_model(arch, seed=0).state_dict()
    assert torch.equal(torch.get_rng_state(), torch_state), "build_model changed the global torch RNG"
    assert random.getstate() == py_state, "build_model changed Python's RNG"

    torch.manual_seed(999)  # another global state: the weights must not depend on it
    again = build_model(arch, seed=0).state_dict()
    assert list(again) == list(first)
    assert all(torch.equal(again[k], first[k]) for k in first)

    other = build_model(arch, seed=1).state_dict()
    assert any(not torch.equal(other[k], first[k]) for k in first)
