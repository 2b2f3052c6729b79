"""`mixnas search` from the command line: user errors, and resume after SIGKILL of the driver."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_helpers import write_space

from mixnas.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_user_errors_are_one_line(tmp_path, capsys):
    space = write_space(tmp_path)
    base = ["search", "--space", str(space), "--dataset", "digits", "--out", str(tmp_path / "run")]
    assert main(base + ["--sampler", "cmaes"]) == 2
    assert "unknown sampler 'cmaes'" in capsys.readouterr().err
    assert main(["search", "--space", str(tmp_path / "nope.yaml")]) == 2
    assert main(base + ["--dataset", "cifar10", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and not (tmp_path / "run" / "study.db").exists()  # nothing created
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "search.yaml").write_text("settings: {}\n")
    assert main(base) == 2
    assert "--resume" in capsys.readouterr().err


def _rows(path: Path) -> list[dict]:
    try:
        return list(csv.DictReader(open(path)))
    except (FileNotFoundError, csv.Error):
        return []


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc; no psutil here)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    kids = _descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # the driver first: kill -9 at an arbitrary moment
    proc.wait()
    for kid in kids:  # then the local Ray it started (on a cluster it would live on)
        try:
            os.kill(kid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_resume_after_sigkill(tmp_path):
    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", str(space), "--dataset", "digits",
           "--trials", "8", "--max-epochs", "2", "--scheduler", "none", "--sampler", "random", "--concurrency", "1",
           "--fraction", "1", "--val-fraction", "0.1", "--out", str(out), "--seed", "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd + ["--trials", "8"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: on a loaded 2-core machine Ray's workers start slowly
    while time.time() < deadline:
        done = [r for r in _rows(out / "trials.csv") if r["state"] == "COMPLETE"]
        if len(done) >= 2:
            break
        time.sleep(0.5)
    else:
        _kill_tree(proc)
        pytest.fail("no two trials completed in time")
    _kill_tree(proc)
    before = {r["number"]: r for r in _rows(out / "trials.csv") if r["state"] == "COMPLETE"}

    res = subprocess.run(cmd + ["--resume", "--trials", "10"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Pareto front" in res.stdout
    import optuna

    study = optuna.load_study(study_name="run", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    counted = [t for t in trials if not t.user_attrs.get("requeued") and "duplicate_of" not in t.user_attrs]
    assert len(counted) == 10  # the extended total
    by_number = {str(t.number): t for t in trials}
    for number, row in before.items():  # nothing completed was lost or changed
        t = by_number[number]
        assert t.state.name == "COMPLETE" and t.user_attrs["digest"] == row["digest"]
    trained = [t.user_attrs["digest"] for t in counted if t.user_attrs.get("status") in ("completed", "pruned")
               and "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained))  # none trained twice


def test_export_onnx(tmp_path, capsys):
    pytest.importorskip("onnx")
    from search_helpers import fake_body

    from mixnas.search_driver import Search, SearchSettings
    from mixnas.trial import LocalRunner

    space = write_space(tmp_path, "1G")
    s = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=3, scheduler="none"))
    LocalRunner(s, fake_body()).run()
    number = s.front()[0].number
    assert main(["export", str(tmp_path / "run"), "--trial", str(number), "--onnx", str(tmp_path / "a.onnx")]) == 0
    assert (tmp_path / "a.onnx").stat().st_size > 1000
    assert "passes onnx.checker, onnxruntime matches PyTorch" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "run" / "pareto" / f"trial_{number:05d}.yaml")]) == 0
    assert main(["export", str(tmp_path / "run"), "--trial", "99", "--onnx", str(tmp_path / "b.onnx")]) == 2
    assert "no trial 99" in capsys.readouterr().err


def test_pareto_yaml_is_accepted_by_inspect_and_train(tmp_path, capsys):
    from search_helpers import fake_body

    from mixnas.models import resolve_arch
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.trial import LocalRunner

    space = write_space(tmp_path, "1G")
    s = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=6, scheduler="none", seed=2))
    LocalRunner(s, fake_body()).run()
    front = s.front()
    pareto = tmp_path / "run" / "pareto.yaml"
    capsys.readouterr()
    assert main(["inspect", str(pareto)]) == 0
    out = capsys.readouterr().out
    assert f"{len(front)} architectures" in out if len(front) != 1 else "digest" in out
    for t in front:
        arch = resolve_arch(f"{pareto}#{t.number}")  # what `mixnas train` and `inspect` resolve
        assert arch.digest() == t.user_attrs["digest"] and arch.name == f"run-t{t.number}"
        assert main(["inspect", f"{pareto}#{t.number}"]) == 0
        assert t.user_attrs["digest"] in capsys.readouterr().out
    assert main(["inspect", f"{pareto}#999"]) == 2
    assert "no entry #999" in capsys.readouterr().err
