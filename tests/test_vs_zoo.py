"""``mixnas study run FILE --add-mixer PLUGIN.py:NAME``: a user's mixer as one more level of a comparison at
matched MACs, trained and reported with seeds, confidence intervals, the power line and the match line."""

from __future__ import annotations

import csv

import pytest
import yaml

from mixnas import api
from mixnas.cli import main
from mixnas.errors import MixnasError
from mixnas.study import load_study
from mixnas.vs_zoo import FILE_NAME, add_mixer
from tests.zoo_plugin import TINY_BASE, write_plugin

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = """\
name: tiny_zoo
""" + TINY_BASE + """\
train: {epochs: 1, batch_size: 64, fraction: 0.2, val_fraction: 0.2}
factors:
  mixer:
    levels:
      mixer: {"stages[0].token_mixer": {name: mixer, token_hidden_dim: 8}}
      strip: {"stages[0].token_mixer": {name: strip}}
seeds: 2
"""


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    (folder / "zoo.yaml").write_text(ZOO)
    return folder / "zoo.yaml", write_plugin(folder, "zoo_run_mixer", "ZooRunMixer")


def test_the_plugin_mixer_joins_the_comparison_at_matched_macs(zoo, tmp_path, capsys):
    study_file, plugin = zoo
    run = tmp_path / "run"
    args = ["study", "run", str(study_file), "--add-mixer", f"{plugin}:zoo_run_mixer", "--out", str(run),
            "--runner", "local"]
    assert main(args) == 0
    assert "MACs matched: mixer-zoorunmixer at width" in capsys.readouterr().out
    written = yaml.safe_load((run / FILE_NAME).read_text())
    assert written["name"] == "tiny_zoo" and (run / written["plugins"][0]).resolve() == plugin.resolve()
    assert written["factors"]["mixer"]["levels"]["zoo_run_mixer"]["match_macs"] == {"target": "median", "by": "width"}
    rows = {r["level"]: r for r in csv.DictReader((run / "report.csv").open())}
    assert list(rows) == ["mixer-mixer", "mixer-strip", "mixer-zoorunmixer"]  # labels drop the _
    mine = rows["mixer-zoorunmixer"]
    assert mine["n"] == "2" and mine["ci95_low"] and mine["ci95_high"] and mine["p_welch"]
    md = (run / "report.md").read_text()
    assert "| mixer-zoorunmixer | 2 |" in md and "Power:" in md and "95% CI" in md
    line = next(x for x in md.splitlines() if x.startswith("MACs matched: mixer-zoorunmixer"))
    record = yaml.safe_load((run / "study.yaml").read_text())["matched"]["mixer"]["zoo_run_mixer"]
    assert f"at width {record['value']} (base 32)" in line and "(median of 2 levels)" in line
    assert abs(record["off_pct"]) <= 10  # width steps of 2 at width ~32 move the MACs by up to ~13 %

    # the run folder's file reproduces it: resumed, nothing is trained again
    assert main(["study", "run", str(run / FILE_NAME), "--out", str(run), "--resume", "--runner", "local"]) == 0
    assert "6 already done, 0 to run" in capsys.readouterr().err
    assert main(args) == 2 and "already holds a study run; pass --resume" in capsys.readouterr().err


def test_a_depth_match_and_the_mistakes(zoo, tmp_path, capsys):
    study_file, plugin = zoo
    path, run = add_mixer(study_file, f"{plugin}:zoo_run_mixer", "depth", tmp_path / "run")
    study = load_study(path)
    assert study.matched["mixer"]["zoo_run_mixer"]["by"] == "depth" and run == tmp_path / "run"
    path, _ = add_mixer(study_file, "gmlp", out=run, resume=True)  # a second mixer joins the first
    assert list(load_study(path).factors[0].levels) == ["mixer", "strip", "zoo_run_mixer", "gmlp"]
    with pytest.raises(MixnasError, match="'strip' is already a level of factor 'mixer'"):
        add_mixer(study_file, "strip", out=tmp_path / "other")
    with pytest.raises(MixnasError, match="unknown token mixer 'grn'"):  # a channel mixer
        add_mixer(study_file, "grn", out=tmp_path / "other")
    assert main(["study", "run", str(study_file), "--match", "depth"]) == 2
    assert "--match goes with --add-mixer" in capsys.readouterr().err
    with pytest.raises(MixnasError, match="add_mixer extends a study file"):  # the Python API, as the CLI
        api.run_study(load_study(study_file), add_mixer="gmlp")
    with pytest.raises(MixnasError, match="match must be width or depth"):
        api.run_study(study_file, add_mixer="gmlp", match="height")
