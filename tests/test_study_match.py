"""``match_macs`` levels: the chosen width or depth lands closest to the target MACs, and the report says so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mixnas.complexity import complexity
from mixnas.errors import MixnasError
from mixnas.study import Factor, _resolve_level, load_study, resolve
from mixnas.study_match import closest, variant_settings
from mixnas.study_run import report, run_study
from mixnas.trial import Outcome
from tests.zoo_plugin import TINY_BASE

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE_PCT = 5.0  # a width step of 2 channels at width 32 moves the MACs by about 6 %, so half of it

TINY = """\
name: tiny_match
""" + TINY_BASE + """\
train: {epochs: 1, batch_size: 64}
factors:
  mixer:
    levels:
      attention: {"stages[0].token_mixer": {name: attention, num_heads: 2}}
      mixer: {"stages[0].token_mixer": {name: mixer, token_hidden_dim: 8}}
      strip: {"stages[0].token_mixer": {name: strip}}
      gmlp: {"stages[0].token_mixer": {name: gmlp}, match_macs: MATCH}
seeds: 2
"""
MATCH_LINE = 1 + next(i for i, line in enumerate(TINY.splitlines()) if "MATCH" in line)


def write(tmp_path: Path, match: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(TINY.replace("MATCH", match))
    return path


def arch_at(study, level: str, settings: dict):
    """The level's architecture with other settings than the study's (a width the match did not choose)."""
    factor = replace(study.factors[0], settings={**study.factors[0].settings, level: settings})
    return _resolve_level(replace(study, factors=[factor]), {"mixer": level})[0]


def level_macs(study, label: str) -> int:
    return complexity(next(t.arch for t in resolve(study) if t.label == label)).macs


def test_a_width_match_lands_closest_to_the_median_and_keeps_the_channel_ratio(tmp_path):
    study = load_study(write(tmp_path, "{target: median, by: width}"))
    got = study.matched["mixer"]["gmlp"]
    others = sorted(level_macs(study, f"mixer-{lv}") for lv in ("attention", "mixer", "strip"))
    assert got["target_macs"] == others[1] and got["target_of"] == "median of 3 levels"
    arch = next(t.arch for t in resolve(study) if t.label == "mixer-gmlp")
    assert got["by"] == "width" and got["value"] != 32 and arch.stem.dim == arch.stages[0].dim == got["value"]
    assert complexity(arch).macs == got["macs"] and abs(got["off_pct"]) <= TOLERANCE_PCT
    assert arch.stages[0].channel_mixer["channel_hidden_dim"] == 2 * got["value"]  # 64 at 32: the ratio 2 kept
    assert arch.stages[0].token_mixer.name == "gmlp"
    for other in (got["value"] - 2, got["value"] + 2):  # no neighbouring width comes closer
        near = complexity(arch_at(study, "gmlp", {**variant_settings(study.base_arch, "width", other),
                                                  **study.factors[0].settings["gmlp"]})).macs
        assert abs(near - got["target_macs"]) >= abs(got["macs"] - got["target_macs"])


def test_a_depth_match_against_a_named_level_and_a_given_number(tmp_path):
    study = load_study(write(tmp_path, "{target: attention, by: depth}"))
    got = study.matched["mixer"]["gmlp"]
    assert got["target_of"] == "level attention" and got["target_macs"] == level_macs(study, "mixer-attention")
    assert got["by"] == "depth" and next(t.arch for t in resolve(study) if t.label == "mixer-gmlp").depth == got["value"]
    given = load_study(write(tmp_path, "{target: 1.5M}", "given.yaml")).matched["mixer"]["gmlp"]
    assert given["target_macs"] == 1.5e6 and given["target_of"] == "given" and abs(given["off_pct"]) <= TOLERANCE_PCT


def test_closest_bisects_over_valid_values_only():
    calls: list[int] = []

    def macs_of(v: int) -> int | None:
        calls.append(v)
        return None if v % 3 == 0 else v * v  # multiples of 3 rejected, like heads that do not divide a width

    assert closest(list(range(1, 200)), macs_of, 50 * 50 + 10) == (50, 2500)
    assert closest(list(range(1, 200)), macs_of, 51 * 51) == (50, 2500)  # 51 is rejected: its neighbours
    assert len(set(calls)) < 40  # a bisection, not a scan of 199 values
    assert closest([3, 6], macs_of, 10) is None


@pytest.mark.parametrize("match, message", [
    ("{target: nope}", "neither a MAC count (19.2M, 1.5e7), median, nor a level of this factor"),
    ("{by: height}", "match_macs.by: 'height' is not allowed; allowed: width, depth"),
    ("{target: gmlp}", "level 'gmlp' is matched itself"),
    ("{target: median, tolerance: 0.001}", "the tolerance is 0.001 %"),
    ("{by: depth, step: 4}", "only for by: width"),
    ("{widht: 3}", "match_macs.widht: unknown key; allowed: target, by, step, tolerance"),
    ("{target: 1000}", "the target 1.00K MACs is out of reach by width: the closest, width 2, costs"),
    ("{target: 1G, by: depth}", "the target 1.00G MACs is out of reach by depth: the closest, depth 64, costs"),
])
def test_mistakes_are_located(tmp_path, match, message):
    with pytest.raises(MixnasError) as err:
        load_study(write(tmp_path, match))
    assert f"tiny.yaml:{MATCH_LINE}:" in str(err.value) and message in str(err.value), str(err.value)


def test_a_level_that_sets_the_width_itself_cannot_match_by_width(tmp_path):
    path = write(tmp_path, "{by: width}")
    path.write_text(path.read_text().replace('{name: gmlp}, match', '{name: gmlp}, "stem.dim": 16, match'))
    with pytest.raises(MixnasError, match="the level sets stem.dim itself; matching by width chooses it"):
        load_study(path)


def test_extending_the_shipped_comparison_adds_a_level_and_the_report_has_the_match_line(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        f"extends: {ROOT / 'studies' / 'token_mixer_comparison.yaml'}\n"
        "task: {dataset: digits}\n"
        "seeds: 2\n"
        "factors:\n  mixer:\n    levels:\n"
        '      mine: {"stages[0].token_mixer": {name: resmlp}, match_macs: {target: mixer, by: depth}}\n')
    study = load_study(tmp_path / "mine.yaml")
    assert study.factors[0].levels == ("vit", "attention", "mixer", "strip", "asmlp", "hire", "smlp", "vip", "mine")
    assert study.baseline == {"mixer": "vit"}

    def body(config, _report):
        return Outcome("completed", [{"epoch": 1, "val_top1": 60.0 + config["train"]["seed"]}], wall_time_s=0.1)

    study.factors[0] = Factor("mixer", study.factors[0].paths, ("vit", "mine"), study.factors[0].settings)  # 2 levels
    run_study(study, tmp_path / "run", body=body, log=lambda line: None)
    md = report(tmp_path / "run")["md"].read_text()
    got = study.matched["mixer"]["mine"]
    assert f"MACs matched: mixer-mine at depth {got['value']} (base 6): " in md and "(level mixer)" in md
    assert "mixer-mine" in md.split("MACs matched")[0] and "Power:" in md
