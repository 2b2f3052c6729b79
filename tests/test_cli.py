"""The command line: output of `models` and `inspect`, and one-line errors (exit 2) for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mixnas.cli import main
from mixnas.cli.format import format_table
from mixnas.util import human

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixnas.cli", *args], capture_output=True, text=True, timeout=300)


def test_format_helpers():
    assert human(12_620_000_000) == "12.62G"
    assert human(None) == "—"
    table = format_table(["a", "bb"], [(1, 22), (333, 4)], [True, True]).splitlines()
    assert table[0] == "  a  bb"
    assert table[2] == "  1  22"
    assert len({len(line) for line in table[:2]}) == 1


def test_models_lists_every_named_model_with_matching_numbers(capsys):
    from mixnas.registry import named_models

    code = main(["models"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in named_models():
        assert name in out
    assert "59,880,472" in out  # mixer_b16_224, as timm
    assert "86,567,656" in out  # vit_b16_224
    assert "1 MAC = 1 multiply-add" in out
    lines = [line for line in out.splitlines() if line.split(" ")[0] in named_models()]
    assert lines and all(line.rstrip().endswith("yes") for line in lines)


def test_inspect_named_model_per_stage_table(capsys):
    assert main(["inspect", "mixer_s32_224"]) == 0
    out = capsys.readouterr().out
    assert "stages.0" in out and "stem" in out and "head" in out
    assert "19,104,624" in out  # total params row


def test_inspect_override_and_latency(capsys):
    assert main(["inspect", "vit_s16_224", "--image-size", "32", "--num-classes", "10", "--latency",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "latency ms" in out and "IQR ms" in out
    assert "1 thread(s)" in out
    assert "input 3x32x32  classes 10" in out


def test_inspect_yaml_round_trip(tmp_path, capsys):
    path = tmp_path / "arch.yaml"
    assert main(["inspect", "mixer_s32_224", "--image-size", "64", "--num-classes", "7",
                 "--save-yaml", str(path)]) == 0
    first = capsys.readouterr().out
    assert main(["inspect", str(path)]) == 0
    second = capsys.readouterr().out
    digest = first.split("digest ")[1].split()[0]
    assert f"digest {digest}" in second


@pytest.mark.parametrize("args, expected", [
    (["inspect", "mixer_b16_22"], "unknown model 'mixer_b16_22' (did you mean 'mixer_b16_224'?)"),
    (["inspect", "mixer_b16_224", "--image-size", "30"], "stem.patch_size: patch size 16 does not divide"),
    (["inspect", "missing_file.yaml"], "missing_file.yaml: no such architecture file"),
    (["inspect", "vit_s16_224", "--device", "cuda", "--latency"], "cuda"),
    (["inspect", "vit_s16_224", "--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_user_mistakes_print_one_line_and_exit_2(args, expected, capsys):
    assert main(args) == 2
    _assert_one_error_line(capsys.readouterr().err, expected)


def test_a_user_mistake_in_a_real_process_prints_one_line_and_exits_2():
    """As above through ``python -m mixnas.cli``: the exit status, and nothing else on stderr (no warning at
    import, no traceback); the other mistakes run in this process, sparing a torch import each."""
    proc = run_cli("inspect", "mixer_b16_22")
    assert proc.returncode == 2, proc.stderr
    _assert_one_error_line(proc.stderr, "unknown model 'mixer_b16_22' (did you mean 'mixer_b16_224'?)")


def _assert_one_error_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "measuring latency" not in line]
    assert len(lines) == 1, stderr
    assert expected in lines[0]


def test_bad_yaml_names_file_and_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layout: isotropic\nstem: {patch_size: 4, dim: 32}\ninput: {image_size: 32}\n"
                    "stages:\n  - {depth: 1, dim: 32, token_mixer: {name: mixer, token_hiden_dim: 8}, "
                    "channel_mixer: mlp}\n")
    proc = run_cli("inspect", str(path))
    assert proc.returncode == 2
    assert f"{path}:5: stages[0].token_mixer.token_hiden_dim" in proc.stderr  # the file, its line, the path
    assert "did you mean 'token_hidden_dim'" in proc.stderr


def test_space_check_prints_parameters_and_size(capsys):
    assert main(["space", "check", str(SPACES / "mlp_mixer.yaml")]) == 0
    out = capsys.readouterr().out
    assert "arch.stages.token_mixer.mixer.token_hidden_dim" in out
    assert "space size: 1,080 parameter assignments" in out


def test_space_sample_writes_inspectable_candidates(tmp_path, capsys):
    out_dir = tmp_path / "samples"
    assert main(["space", "sample", str(SPACES / "mlp_mixer.yaml"), "-n", "3", "--seed", "2",
                 "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    files = sorted(out_dir.glob("*.yaml"))
    assert len(files) == 3
    assert "3 valid candidates" in out
    for f in files:
        digest = f.stem.split("_", 1)[1]
        assert digest in out
        assert main(["inspect", str(f)]) == 0
        assert f"digest {digest}" in capsys.readouterr().out


def test_output_cut_short_by_head_is_not_an_error(monkeypatch, capsys):
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("no descriptor")

    root = Path(__file__).resolve().parent.parent
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["study", "check", str(root / "studies" / "token_mixer_comparison.yaml")]) == 0


PLUGIN_ARCH = """\
plugins: [mean_mixer.py]
layout: isotropic
input: {image_size: 16, in_channels: 1, num_classes: 10}
stem: {patch_size: 4, dim: 8}
stages:
- {depth: 1, dim: 8, token_mixer: {name: plug_cli, scale: 2.0}, channel_mixer: {name: mlp, channel_hidden_dim: 16}}
"""


def test_the_plugin_option_registers_mixers_that_models_lists(tmp_path, capsys, forget):
    from plugin_helpers import write_mixer

    path = write_mixer(tmp_path, name="plug_cli")
    assert main(["models", "--mixers", "--plugin", str(path)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if " plug_cli " in line]
    assert len(row) == 1 and row[0].split()[:3] == ["token", "plug_cli", "scale"]
    assert row[0].rstrip().endswith(str(path.resolve()))  # where the mixer comes from


def test_an_arch_file_loads_its_plugins_relative_to_itself(tmp_path, capsys, forget, monkeypatch):
    from plugin_helpers import write_mixer

    (tmp_path / "lab").mkdir()
    write_mixer(tmp_path / "lab", name="plug_cli")
    (tmp_path / "lab" / "arch.yaml").write_text(PLUGIN_ARCH)
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "lab/arch.yaml"]) == 0
    out = capsys.readouterr().out
    assert "plug_cli(scale=2.0) + mlp(channel_hidden_dim=16)" in out


@pytest.mark.parametrize("spec, expected", [
    ("nope.py", "mixnas models: error: --plugin[0]: plugin file 'nope.py' not found"),
    ("broken.py", "mixnas models: error: --plugin[0]: plugin {broken}, line 2: ZeroDivisionError: division by zero"),
])
def test_a_plugin_option_that_fails_is_one_line_naming_its_file_and_line(tmp_path, capsys, forget, spec,
                                                                         expected):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ny = x / 0\n")
    assert main(["models", "--mixers", "--plugin", str(tmp_path / spec)]) == 2
    _assert_one_error_line(capsys.readouterr().err, expected.format(broken=broken.resolve()).replace(
        "'nope.py'", repr(str(tmp_path / "nope.py"))))
