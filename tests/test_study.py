"""Study files: validation with file:line errors, resolution into trials, materialisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixnas.errors import MixnasError
from mixnas.study import load_study, materialise, resolve

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "examples" / "strip_mlp_1m_fmnist.yaml"

GOOD = f"""\
name: sw
base: {BASE}
task: {{dataset: digits, image_size: 32}}
train: {{epochs: 1, fraction: 0.5}}
factors:
  strip_width:
    path: stages[0:2].token_mixer.strip_width
    levels: [1, 3, 5, 7]
baseline: {{strip_width: 3}}
seeds: [0, 1]
paper:
  citation: "Strip-MLP, Table 6"
  values: {{3: 80.0, 5: 79.0}}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


def test_resolve_sets_the_factor_on_the_named_stages(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    trials = resolve(study)
    assert [t.key for t in trials][:3] == ["strip_width-1-s0", "strip_width-1-s1", "strip_width-3-s0"]
    assert len(trials) == 8
    t7 = trials[-1]
    assert [s.token_mixer["strip_width"] for s in t7.arch.stages] == [7, 7, 3]  # stage 3 keeps the base's
    assert t7.train == {**t7.train, "epochs": 1, "fraction": 0.5, "seed": 1}
    assert study.baseline == {"strip_width": 3}
    assert study.paper["values"] == {"strip_width-3": 80.0, "strip_width-5": 79.0}
    assert len({t.digest for t in trials}) == 8  # seeds and levels all differ


def test_star_path_reports_the_invalid_level_with_file_and_line(tmp_path):
    text = GOOD.replace("stages[0:2]", "stages.*")
    with pytest.raises(MixnasError, match=r"study.yaml:6: factors.strip_width \(level strip_width-7\).*stages\[2\]"
                                          r".*allowed: odd values up to 5"):
        load_study(write(tmp_path, text))


@pytest.mark.parametrize(("old", "new", "pattern"), [
    ("token_mixer.strip_width", "token_mixer.strip_wdth",
     r":7: factors.strip_width.path: .*no key 'strip_wdth'.*did you mean 'strip_width'.*allowed: arrangement"),
    ("stages[0:2]", "stages[5]", r":7: factors.strip_width.path: .*out of range"),
    ("stages[0:2].token_mixer.strip_width", "train.lrr", r":7: .*unknown recipe field.*did you mean 'train.lr'"),
    ("stages[0:2].token_mixer.strip_width", "stages[0].token_mixer",
     r":7: .*a section, not a value"),
    ("stages[0:2].token_mixer.strip_width", "train.fraction",
     r":5: factors \(level strip_width-3\): .*fraction must be in \(0, 1\]"),
    ("baseline: {strip_width: 3}", "baseline: {strip_width: 4}", r":9: baseline.strip_width: 4 is not one"),
    ("seeds: [0, 1]", "seeds: [0, 0]", r":10: seeds: must be a count or a list of distinct"),
    ("values: {3: 80.0", "values: {9: 80.0", r":13: paper.values.9: not a level"),
    ("  citation: \"Strip-MLP, Table 6\"\n", "", r"paper.citation: the paper's values need a citation"),
    ("train: {epochs: 1", "train: {epochz: 1", r":4: train.epochz: unknown key \(did you mean 'epochs'\?\)"),
    ("task: {dataset: digits, image_size: 32}", "task: {image_size: 32}", r":3: task: needs a dataset"),
    ("dataset: digits", "dataset: digitz", r":3: task.dataset: unknown dataset 'digitz' \(did you mean 'digits'\?\)"),
    ("name: sw\n", "name: sw\nobjectives: [top5]\n", r":2: objectives\[0\]: unknown objective 'top5'"),
    ("train: {epochs: 1, fraction: 0.5}", "train: {epochs: 1, fraction: 0.5, seed: 3}",
     r"train.seed: set the seeds"),
])
def test_mistakes_name_the_line_and_path(tmp_path, old, new, pattern):
    assert old in GOOD
    with pytest.raises(MixnasError, match=pattern):
        load_study(write(tmp_path, GOOD.replace(old, new)))


def test_train_factor_and_named_model_grid(tmp_path):
    text = """\
name: grid
base: strip_mlp_1m
task: {dataset: digits, image_size: 32, in_channels: 1, num_classes: 10}
factors:
  lr: {path: train.lr, levels: [0.001, 0.002]}
  depth: {path: "stages[2].depth", levels: [1, 2]}
seeds: 1
"""
    from mixnas.registry import named_models
    if "strip_mlp_1m" not in named_models():
        text = text.replace("base: strip_mlp_1m", f"base: {BASE}")
    trials = resolve(load_study(write(tmp_path, text)))
    assert [t.key for t in trials] == ["lr-0.001_depth-1-s0", "lr-0.001_depth-2-s0", "lr-0.002_depth-1-s0",
                                       "lr-0.002_depth-2-s0"]
    assert trials[1].train["lr"] == 0.001 and trials[1].arch.stages[2].depth == 2
    assert trials[0].arch.input.image_size == 32


def test_materialise_writes_every_trial_before_training_and_refuses_another_study(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    trials = materialise(study, tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run" / "trials").iterdir())
    assert files == sorted(f"{t.key}.yaml" for t in trials)
    one = yaml.safe_load((tmp_path / "run" / "trials" / "strip_width-5-s1.yaml").read_text())
    assert one["seed"] == 1 and one["train"]["seed"] == 1 and one["level"] == {"strip_width": 5}
    assert one["arch"]["stages"][1]["token_mixer"]["strip_width"] == 5
    resolved = yaml.safe_load((tmp_path / "run" / "study.yaml").read_text())
    assert resolved["trials"] == [t.key for t in trials]
    materialise(study, tmp_path / "run")  # the same study again: fine (resume)
    more = load_study(write(tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: [0, 1, 2]")))
    assert len(materialise(more, tmp_path / "run")) == 12  # a seed added later: 4 new trials beside the old
    other = load_study(write(tmp_path, GOOD.replace("fraction: 0.5", "fraction: 0.25")))
    with pytest.raises(MixnasError, match="is defined differently by"):
        materialise(other, tmp_path / "run")
    corrected = load_study(write(tmp_path, GOOD.replace("3: 80.0, 5: 79.0", "3: 80.5, 5: 79.0")))
    materialise(corrected, tmp_path / "run")  # paper values added after the run: taken over, nothing re-trained
    assert yaml.safe_load((tmp_path / "run" / "study.yaml").read_text())["paper"]["values"]["strip_width-3"] == 80.5


def test_shipped_studies_load_and_resolve():
    paths = [p for p in sorted((ROOT / "studies").rglob("*.yaml")) if not p.name.startswith("_")
             and "results" not in p.parts]
    assert len(paths) >= 14  # Tables 6-9 as CPU proxies and with the paper's recipe on 2 datasets, + mixers
    for path in paths:
        study = load_study(path)
        trials = resolve(study)
        assert len(trials) == len(study.levels()) * len(study.seeds)
        if path.parent.name == "paper":  # the official recipe: Strip-MLP-T at 224 for 300 epochs, test split
            assert study.base == "strip_mlp_t" and study.task["image_size"] == 224 and study.task["test_eval"]
            assert study.train["epochs"] == 300 and study.train["fraction"] == 1.0
            assert study.paper["metric"] == "test_top1" and study.resources["gpu"] == 1
        else:  # a CPU proxy: the 1M-parameter models on Fashion-MNIST at 32x32
            assert study.task == {"dataset": "fashion-mnist", "image_size": 32} and study.resources["gpu"] == 0


def test_paper_recipe_patch_levels_follow_each_stage_width():
    study = load_study(ROOT / "studies" / "paper" / "strip_mlp_table7_patch_groups_cifar100.yaml")
    by_label = {t.label: t.arch for t in resolve(study)}
    for label, div in (("patches-C", 1), ("patches-C2", 2), ("patches-C4", 4), ("patches-C8", 8)):
        assert [s.token_mixer["patch_groups"] for s in by_label[label].stages] == [s.dim // 2 // div
                                                                                   for s in by_label[label].stages]
    assert study.paper["values"] == {"patches-C4": 86.50, "patches-1": 85.03}


def test_shipped_strip_width_study():
    study = load_study(ROOT / "studies" / "strip_mlp_table6_strip_width.yaml")
    trials = resolve(study)
    assert len(trials) == 4 * len(study.seeds) and len(study.seeds) >= 5
    assert study.baseline == {"strip_width": 3} and study.task["dataset"] == "fashion-mnist"
    widths = {t.label: [s.token_mixer["strip_width"] for s in t.arch.stages] for t in trials}
    assert widths["strip_width-7"] == [7, 7, 3] and widths["strip_width-1"] == [1, 1, 3]
    assert len({(t.train["epochs"], t.train["fraction"]) for t in trials}) == 1  # one recipe for every level


def test_named_levels_set_several_paths_and_whole_sections(tmp_path):
    from mixnas.study import loads_study

    text = f"""\
name: named
base: {BASE}
task: {{dataset: digits, image_size: 16}}
factors:
  mixer:
    levels:
      strip: {{"stages[0].token_mixer.patch_groups": 1, "stages[1].token_mixer.patch_groups": 2}}
      mixer: {{"stages.*.token_mixer": {{name: mixer, token_hidden_dim: 8}}, train.lr: 0.001}}
seeds: 1
"""
    trials = resolve(loads_study(text))
    assert [t.label for t in trials] == ["mixer-strip", "mixer-mixer"]
    strip, mixer = trials[0].arch.stages, trials[1].arch.stages
    assert [s.token_mixer["patch_groups"] for s in strip] == [1, 2, 4]
    assert {s.token_mixer.name for s in mixer} == {"mixer"} and trials[1].train["lr"] == 0.001
    assert trials[0].train["lr"] != 0.001
    bad = text.replace("patch_groups\": 1", "patch_grups\": 1")
    err = pytest.raises(MixnasError, loads_study, bad).value
    assert "factors.mixer.levels.strip.stages[0].token_mixer.patch_grups" in str(err) and "patch_groups" in str(err)
    err = pytest.raises(MixnasError, loads_study, text.replace("token_hidden_dim: 8", "token_hidden_dim: -8")).value
    assert "factors.mixer (level mixer-mixer)" in str(err)


def test_a_study_extends_another_and_keeps_its_base_file(tmp_path):


    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "arch.yaml").write_text(BASE.read_text())
    (tmp_path / "a" / "parent.yaml").write_text("""\
name: parent
base: arch.yaml
task: {dataset: digits, image_size: 16}
train: {epochs: 1, lr: 0.01}
factors:
  width: {path: "stages[0].token_mixer.strip_width", levels: [1, 3]}
seeds: 2
""")
    (tmp_path / "child.yaml").write_text("extends: a/parent.yaml\ntrain: {epochs: 2}\nseeds: [5]\n")
    child = load_study(tmp_path / "child.yaml")
    assert child.name == "child" and child.seeds == [5] and child.train == {"epochs": 2, "lr": 0.01}
    assert child.base == "a/arch.yaml" and child.base_arch.stages[0].dim == 32
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    assert "circular extends" in str(pytest.raises(MixnasError, load_study, tmp_path / "loop.yaml").value)


PLUGIN_ARCH = """\
plugins: [mean_mixer.py]
name: plug
layout: isotropic
input: {image_size: 16, in_channels: 1, num_classes: 10}
stem: {patch_size: 4, dim: 8}
stages:
- depth: 1
  dim: 8
  token_mixer: {name: plug_study, scale: 1.0}
  channel_mixer: {name: mlp, channel_hidden_dim: 16}
"""

PLUGIN_STUDY = """\
name: plugged
plugins: [../lab/mean_mixer.py]
base: ../lab/arch.yaml
task: {dataset: digits, image_size: 16}
train: {epochs: 1, fraction: 0.1}
factors:
  scale:
    path: stages[0].token_mixer.scale
    levels: [0.5, 2.0]
seeds: [0]
"""


def test_a_study_varies_a_plugin_mixer_and_its_run_records_the_plugin(tmp_path, forget):
    from plugin_helpers import write_mixer

    from mixnas.plugins import file_sha256
    from mixnas.study_run import report, run_study
    from mixnas.trial import Outcome

    (tmp_path / "lab").mkdir()
    (tmp_path / "studies").mkdir()
    plugin = write_mixer(tmp_path / "lab", name="plug_study")
    (tmp_path / "lab" / "arch.yaml").write_text(PLUGIN_ARCH)  # the base names the plugin too (its own file)
    study = load_study(write(tmp_path / "studies", PLUGIN_STUDY))
    assert study.plugins == (str(plugin.resolve()),)
    assert [t.arch.stages[0].token_mixer["scale"] for t in resolve(study)] == [0.5, 2.0]
    sha = file_sha256(plugin)

    def body(config, report):
        assert [p["sha256"] for p in config["plugins"]] == [sha]  # shipped to the worker with the trial
        row = {"epoch": 1, "val_top1": 50.0, "partial": 1.0}
        return Outcome("completed", [row], "", 0.1, {"plugin_sha256": sha})

    run = tmp_path / "run"
    results = run_study(study, run, body=body, log=lambda line: None)
    assert all(r["code"]["plugins"][0]["sha256"] == sha and r["worker"]["plugin_sha256"] == sha for r in results)
    recorded = yaml.safe_load((run / "study.yaml").read_text())["plugins"]
    assert [r["sha256"] for r in recorded if r["file"] == str(plugin.resolve())] == [sha]
    plugin.unlink()
    with pytest.raises(MixnasError, match=rf"study.yaml: plugins\[\d\]: the plugin file {plugin.resolve()} this run "
                                          "was made with is gone"):
        report(run)


def test_a_study_run_resumes_without_the_plugin_flag_it_started_with(tmp_path, monkeypatch):
    """The study file does not name the plugin (it came from --plugin): resuming reloads the run's record."""
    import functools

    from plugin_helpers import unloading_plugins, write_mixer

    from mixnas import api, study_run
    from mixnas.trial import Outcome

    trained = []

    def body(config, report):
        trained.append(config["key"] if "key" in config else len(trained))
        return Outcome("completed", [{"epoch": 1, "val_top1": 50.0, "partial": 1.0}], "", 0.1, {})

    monkeypatch.setattr(study_run, "run_study", functools.partial(study_run.run_study, body=body))
    (tmp_path / "lab").mkdir()
    (tmp_path / "studies").mkdir()
    plugin = write_mixer(tmp_path / "lab", name="plug_study")
    (tmp_path / "lab" / "arch.yaml").write_text(PLUGIN_ARCH.replace("plugins: [mean_mixer.py]\n", ""))
    study_file = write(tmp_path / "studies", PLUGIN_STUDY.replace("plugins: [../lab/mean_mixer.py]\n", ""))
    run = tmp_path / "run"
    session = unloading_plugins()  # a first process: the plugin only from --plugin
    next(session)
    api.run_study(study_file, out=run, runner="local", report=False, quiet=True, plugins=[str(plugin)])
    next(session, None)
    assert len(trained) == 2
    with pytest.raises(MixnasError, match="plug_study"):  # without the run's record the mixer is unknown
        api.run_study(study_file, out=tmp_path / "fresh", runner="local", report=False, quiet=True)
    session = unloading_plugins()  # a second process: resumed without --plugin
    next(session)
    resumed = api.run_study(study_file, out=run, resume=True, runner="local", quiet=True)
    next(session, None)
    assert len(trained) == 2 and len(resumed.completed) == 2  # nothing trained again; the report was written
    assert resumed.report is not None
