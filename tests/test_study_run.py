"""`mixnas study run / report`: a tiny real study end to end on digits, and resume after failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mixnas.cli import main
from mixnas.errors import MixnasError
from mixnas.study import load_study
from mixnas.study_run import report, run_study
from mixnas.trial import Outcome

BASE = Path(__file__).resolve().parent.parent / "examples" / "strip_mlp_1m_fmnist.yaml"
TINY = f"""\
name: tiny
base: {BASE}
task: {{dataset: digits, image_size: 16}}
train: {{epochs: 1, batch_size: 64}}
factors:
  strip_width: {{path: "stages[0].token_mixer.strip_width", levels: [1, 3]}}
seeds: 2
paper: {{citation: "made up for the test", values: {{1: 50.0, 3: 60.0}}}}
"""


def test_tiny_study_end_to_end_on_digits(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    assert main(["study", "run", str(tmp_path / "tiny.yaml"), "--out", str(run), "--runner", "local"]) == 0
    for key in ("strip_width-1-s0", "strip_width-1-s1", "strip_width-3-s0", "strip_width-3-s1"):
        assert (run / "trials" / f"{key}.yaml").is_file()
        rec = json.loads((run / "results" / f"{key}.json").read_text())
        assert rec["status"] == "completed" and rec["epochs"] == 1 and 0 < rec["top1"] <= 100
        assert rec["params"] > 0 and rec["macs"] > 0
    rows = list(csv.DictReader((run / "report.csv").open()))
    assert [r["level"] for r in rows] == ["strip_width-1", "strip_width-3"]
    assert [r["n"] for r in rows] == ["2", "2"] and rows[1]["p_welch"] and rows[0]["paper"] == "50.0"
    md = (run / "report.md").read_text()
    assert "strip_width-1 (baseline)" in md and "Kendall τ vs the paper" in md and "made up for the test" in md
    assert r"\toprule" in (run / "report.tex").read_text() and "plotly" in (run / "report.html").read_text()
    assert "already holds a study run" in str(pytest.raises(MixnasError, run_study, load_study(tmp_path / "tiny.yaml"),
                                                            run).value)


def fake_body(fail: set[int], calls: list[int]):
    def body(config, report):
        calls.append(config["train"]["seed"] * 10 + config["arch"]["stages"][0]["token_mixer"]["strip_width"])
        if config["number"] in fail:
            raise RuntimeError("worker died")
        top1 = 70.0 + config["arch"]["stages"][0]["token_mixer"]["strip_width"] + config["train"]["seed"]
        return Outcome("completed", [{"epoch": 1, "val_top1": top1}], wall_time_s=0.1)
    return body


def test_failed_trials_are_recorded_and_rerun_on_resume(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    study = load_study(tmp_path / "tiny.yaml")
    run, calls, lines = tmp_path / "run", [], []
    results = run_study(study, run, body=fake_body({2}, calls), log=lines.append)
    assert [r["status"] for r in results] == ["completed", "completed", "error", "completed"]
    assert "worker died" in results[2]["reason"] and "[3/4] strip_width-3-s0: error" in lines[3]
    paths = report(run)
    assert "1 failed" in paths["md"].read_text()
    calls.clear()
    results = run_study(study, run, resume=True, body=fake_body(set(), calls), log=lines.append)
    assert calls == [3]  # only the failed trial (seed 0, width 3) ran again
    assert [r["top1"] for r in results] == [71.0, 72.0, 73.0, 74.0]
    assert "2 already done" not in lines[-2] and "3 already done, 1 to run" in lines[-2]
    rows = list(csv.DictReader(report(run)["csv"].open()))
    assert float(rows[1]["delta"]) == pytest.approx(2.0) and float(rows[0]["mean"]) == pytest.approx(71.5)


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    assert main(["study", "report", str(tmp_path)]) == 2


def test_report_compares_with_the_papers_stated_order_when_it_gives_no_numbers(tmp_path):
    text = TINY.replace('values: {1: 50.0, 3: 60.0}', 'ranks: {1: 2, 3: 1}')
    assert "ranks" in text
    (tmp_path / "tiny.yaml").write_text(text)
    study = load_study(tmp_path / "tiny.yaml")
    run_study(study, tmp_path / "run", body=fake_body(set(), []), log=lambda line: None)
    md = report(tmp_path / "run")["md"].read_text()
    assert "Kendall τ vs the paper: -1.000" in md and "(against the paper's stated order)" in md
    assert "Paper's stated order (worst first): strip_width-3 < strip_width-1" in md
    assert "| rank 2 |" in md and "| rank 1 |" in md


def test_test_eval_scores_the_final_model_on_the_test_split(tmp_path):
    text = TINY.replace("image_size: 16}", "image_size: 16, test_eval: true}").replace("seeds: 2", "seeds: 1")
    (tmp_path / "tiny.yaml").write_text(text.replace('citation: "made up for the test"',
                                                     'citation: "made up for the test", metric: test_top1'))
    results = run_study(load_study(tmp_path / "tiny.yaml"), tmp_path / "run", runner="local", log=lambda line: None)
    assert all(r["status"] == "completed" and 0 < r["test_top1"] <= 100 for r in results)
    assert "test_top1 (the test split" in report(tmp_path / "run")["md"].read_text()
    (tmp_path / "bad.yaml").write_text(TINY.replace('citation: "made up for the test"',
                                                    'citation: "x", metric: test_top1'))
    assert "needs 'test_eval: true'" in str(pytest.raises(MixnasError, load_study, tmp_path / "bad.yaml").value)


def test_a_shipped_paper_recipe_trains_strip_mlp_t_at_224_on_a_tiny_cifar100(tmp_path):
    """The official recipe end to end (Strip-MLP-T, 224x224, RandAugment, mixup/cutmix, erasing, test eval),
    shrunk to one epoch of one step (4 images; 4 to validate, 4 to test) by a study that extends the shipped file:
    each image costs about a second at 224 on a CPU."""
    import pickle

    from data.dataset_files import cifar_batch, make_cifar100

    root = make_cifar100(tmp_path / "cifar", n_train=4, n_test=4)
    batch = cifar_batch(8, 4, "fine_labels", 3)  # 2 images of each of 4 of the 100 classes: a stratified split works
    (root / "train").write_bytes(pickle.dumps({**batch, b"coarse_labels": [0] * 8}, protocol=2))
    shipped = Path(__file__).resolve().parent.parent / "studies" / "paper"
    (tmp_path / "small.yaml").write_text(f"""\
extends: {shipped / "strip_mlp_table8_cascade_parallel_cifar100.yaml"}
train: {{epochs: 1, batch_size: 4, warmup_epochs: 0, val_fraction: 0.5}}
seeds: [0]
resources: {{cpu: 2, gpu: 0}}
""")
    study = load_study(tmp_path / "small.yaml")
    assert study.base_arch.stages[2].depth == 12 and study.base_arch.input.image_size == 224
    assert study.train["rand_augment"] == "rand-m9-mstd0.5-inc1" and study.train["epochs"] == 1
    results = run_study(study, tmp_path / "run", runner="local", data_dir=str(tmp_path / "cifar"),
                        log=lambda line: None)
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert all(r["test_top1"] is not None and r["params"] > 20e6 for r in results)
    md = report(tmp_path / "run")["md"].read_text()
    assert "test_top1 (the test split" in md and "Table 8 (CIFAR-100" in md
