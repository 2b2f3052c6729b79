"""``mixnas check-mixer``: the contract's table for a built-in or a plugin's mixer; exit 0 / 1 / 2."""

from __future__ import annotations

import json

import pytest
from plugin_mixers import write_plugin

from mixnas.cli import main


def test_a_builtin_mixer_passes_with_a_table_and_its_reference_cost(capsys):
    assert main(["check-mixer", "mlp", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "channel mixer 'mlp' (mixnas.mixers.mlp.ChannelMLP), the mixer contract at dim 64, 8x8 grid" in out
    for check in ("defaults", "shape", "determinism", "fvcore", "gradients", "parameters", "onnx"):
        assert any(line.split()[:2] in ([check, "passed"], [check, "skipped"]) for line in out.splitlines()), check
    assert "compile      skipped  not run: --fast" in out
    params = 2 * 64 * 256 + 256 + 64  # Linear(64, 256) and Linear(256, 64), hidden 4 x dim
    assert f"at dim 64, 8x8 grid, batch 1: params {params:,}, MACs 2.10M (2,097,152)" in out
    assert "every applicable check passes" in out


def test_a_plugin_file_target_by_class_name_or_registered_name(tmp_path, monkeypatch, capsys, forget):
    write_plugin(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check-mixer", "my_mixers.py:LowRankTokenMixer", "--fast", "--skip", "parameters"]) == 0
    out = capsys.readouterr().out
    assert "token mixer 'lowrank' (mixnas_plugin_my_mixers.LowRankTokenMixer)" in out
    assert "parameters   skipped  not run: --skip" in out
    assert main(["check-mixer", "my_mixers.py:lowrank", "--fast", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["name"] == "lowrank" and report["passed"] is True
    assert report["reference"] == {"dim": 64, "grid": [8, 8], "batch": 1}
    assert report["params"] == 4192 and report["macs"] == 262144
    assert [c["status"] for c in report["checks"]].count("failed") == 0


def test_a_failing_check_exits_1_and_names_it(tmp_path, capsys, forget):
    path = write_plugin(tmp_path)
    assert main(["check-mixer", f"{path}:drops_a_token", "--fast", "--skip", "onnx,determinism"]) == 1
    out = capsys.readouterr().out
    assert "shape        failed   (2, 64, 64) in, (2, 63, 64) out" in out
    assert out.rstrip().endswith("fails shape")


@pytest.mark.parametrize("argv, words", [
    (["strp"], "unknown mixer 'strp' (did you mean 'strip'?); registered: "),
    (["StripTokenMixr"], "(did you mean 'StripTokenMixer'?)"),
    (["moe"], "'moe' is registered as a token mixer (TokenMoE) and a channel mixer (ChannelMoE); add --role token "
              "or --role channel"),
    (["strip", "--role", "channel"], "unknown channel mixer 'strip'"),
    (["mixnas.mixers.mlp:strip"], "unknown mixer 'strip' in "),
    (["missing.py:strip"], "plugin file 'missing.py' not found"),
    (["my.py:"], "expected MODULE:NAME"),
    (["strip", "--skip", "shapes"], "--skip 'shapes' is not a check (did you mean 'shape'?)"),
])
def test_a_mistake_in_the_target_exits_2_with_one_line(argv, words, capsys, forget):
    assert main(["check-mixer", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err


def test_an_unregistered_class_in_the_plugin_is_named(tmp_path, capsys, forget):
    path = write_plugin(tmp_path)
    assert main(["check-mixer", f"{path}:NotRegistered"]) == 2
    assert "class NotRegistered is not registered as a mixer: decorate it with @register_mixer" in \
        capsys.readouterr().err


def test_the_parser_spells_the_roles_and_checks_of_the_library():
    from mixnas import contract
    from mixnas.cli import check
    from mixnas.registry import ROLES

    assert check.ROLE_CHOICES == ROLES and check.CHECK_NAMES == contract.CHECKS
