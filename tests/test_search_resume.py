"""`mixnas search --resume`: the recorded settings are what continues; a flag that changes what a trial means
is refused; two drivers on one run folder are refused by a lock; the space's epochs and a flag's precedence."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from search_helpers import fake_body, write_space

from mixnas.cli import main
from mixnas.errors import MixnasError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def local_runs(monkeypatch):
    """`mixnas search` with the fake trial body in this process instead of Ray (the CLI path is the same up
    to the runner). Records every Search it ran."""
    import mixnas.ray_io
    from mixnas.trial import LocalRunner

    ran = []

    def run_search(search):
        ran.append(search)
        LocalRunner(search, fake_body()).run()

    monkeypatch.setattr(mixnas.ray_io, "run_search", run_search)
    return ran


def test_resume_without_flags_continues_the_recorded_search(tmp_path, local_runs, capsys):
    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    assert main(["search", "--space", str(space), "--dataset", "digits", "--trials", "4", "--max-epochs", "2",
                 "--fraction", "0.5", "--sampler", "random", "--scheduler", "none", "--seed", "7",
                 "--out", str(out)]) == 0
    first = local_runs[-1]
    # typed as the issue tells it: no --space, no --dataset, no --max-epochs, only a larger --trials
    assert main(["search", "--resume", "--out", str(out), "--trials", "6"]) == 0
    head = capsys.readouterr().out.splitlines()
    line = next(x for x in head if x.startswith("search run (resumed"))
    assert "dataset digits" in line and "up to 2 epochs (recorded in" in line and "0.5 of the training" in line
    again = local_runs[-1]
    assert again.dataset == "digits" and again.max_epochs == 2 and again.settings.seed == 7
    assert again.sampler_name == "random" and again.settings.scheduler == "none"
    assert again.train_cfg["fraction"] == 0.5 and again.study_name == first.study_name
    trials = again.trials()
    counted = [t for t in trials if "duplicate_of" not in t.user_attrs and not t.user_attrs.get("requeued")
               and t.user_attrs.get("status") not in ("infeasible", "invalid")]
    assert len(counted) == 6
    assert {t.user_attrs["fidelity"] for t in counted if t.state.name == "COMPLETE"} == {2}
    # a later resume without --trials keeps the extended count (from search.resume.yaml)
    assert main(["search", "--resume", "--out", str(out)]) == 0
    assert local_runs[-1].settings.trials == 6


@pytest.mark.parametrize("flag, value, recorded", [
    ("--dataset", "fashion-mnist", "dataset: digits"),
    ("--max-epochs", "5", "max_epochs: 2"),
    ("--fraction", "0.2", "fraction: 0.5"),
    ("--seed", "8", "seed: 7"),
    ("--objectives", "top1:max,params:min", "objectives: top1:max,macs:min"),
    ("--sampler", "tpe", "sampler: random"),
    ("--scheduler", "moasha", "scheduler: none"),
    ("--eta", "3", "eta: 2"),
    ("--bf16", None, "bf16: False"),
    ("--study-name", "other", "study_name: run"),
])
def test_resume_refuses_a_flag_that_changes_meaning(tmp_path, local_runs, capsys, flag, value, recorded):
    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    assert main(["search", "--space", str(space), "--dataset", "digits", "--trials", "3", "--max-epochs", "2",
                 "--fraction", "0.5", "--sampler", "random", "--scheduler", "none", "--seed", "7",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    runs = len(local_runs)
    before = (out / "trials.csv").read_bytes()
    extra = [flag] + ([value] if value is not None else [])
    assert main(["search", "--resume", "--out", str(out), "--trials", "5", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and recorded in err and "search.yaml" in err
    assert len(local_runs) == runs and (out / "trials.csv").read_bytes() == before  # nothing ran, nothing written
    # the same value as recorded is accepted, and so are execution settings
    same = {"--dataset": "digits", "--max-epochs": "2", "--fraction": "0.5", "--seed": "7"}
    if flag in same:
        assert main(["search", "--resume", "--out", str(out), flag, same[flag], "--concurrency", "1",
                     "--resources", "cpu=1", "--retries", "1"]) == 0


def test_resume_refuses_an_edited_space_and_a_missing_record(tmp_path, local_runs, capsys):
    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    base = ["search", "--space", str(space), "--dataset", "digits", "--trials", "2", "--max-epochs", "1",
            "--sampler", "random", "--scheduler", "none", "--out", str(out)]
    assert main(base) == 0
    space.write_text(space.read_text().replace("depth: {choice: [1, 2]}", "depth: {choice: [1, 2, 3]}"))
    capsys.readouterr()
    assert main(["search", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "differs from the space recorded" in err and "stages.depth" in err
    assert main(["search", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    (out / "search.yaml").write_text("just text\n")
    assert main(["search", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a search record" in err and err.count("\n") == 1
    assert main(["search", "--trials", "2"]) == 2
    assert "--space is required" in capsys.readouterr().err


def test_a_flag_wins_over_the_space_epochs_and_the_space_over_the_default(tmp_path, local_runs, capsys):
    space = write_space(tmp_path, "1G")  # its task.train.epochs is 3
    assert main(["search", "--space", str(space), "--trials", "1", "--sampler", "random", "--scheduler", "none",
                 "--out", str(tmp_path / "a")]) == 0
    assert local_runs[-1].max_epochs == 3
    assert "up to 3 epochs (the space's task.train.epochs)" in capsys.readouterr().out
    assert main(["search", "--space", str(space), "--trials", "1", "--sampler", "random", "--scheduler", "none",
                 "--max-epochs", "1", "--out", str(tmp_path / "b")]) == 0
    assert local_runs[-1].max_epochs == 1
    assert "up to 1 epochs (--max-epochs)" in capsys.readouterr().out
    plain = tmp_path / "plain.yaml"
    plain.write_text(space.read_text().replace("  train: {epochs: 3, batch_size: 64}\n", ""))
    assert main(["search", "--space", str(plain), "--trials", "1", "--sampler", "random", "--scheduler", "none",
                 "--out", str(tmp_path / "c")]) == 0
    assert "up to 2 epochs (the default)" in capsys.readouterr().out


def test_a_second_driver_on_one_run_folder_is_refused(tmp_path):
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.trial import LocalRunner

    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    first = Search(SearchSettings(space=str(space), out=str(out), trials=2, scheduler="none", sampler="random"))
    with pytest.raises(MixnasError, match="another mixnas driver is running on this run folder"):
        Search(SearchSettings(space=str(space), out=str(out), trials=2, scheduler="none", sampler="random",
                              resume=True))
    # from another process too, through the CLI: one line, exit 2, the first driver's files untouched
    script = textwrap.dedent(f"""
        import sys
        from mixnas.cli import main
        sys.exit(main(["search", "--resume", "--out", {str(out)!r}]))
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2, res.stderr
    assert "another mixnas driver is running" in res.stderr and f"pid {__import__('os').getpid()}" in res.stderr
    assert "Traceback" not in res.stderr
    LocalRunner(first, fake_body()).run()  # the first finishes; its close() releases the folder
    again = Search(SearchSettings(space=str(space), out=str(out), trials=3, scheduler="none", sampler="random",
                                  resume=True))
    LocalRunner(again, fake_body()).run()
    assert len([t for t in again.trials() if "duplicate_of" not in t.user_attrs]) >= 3


def test_a_lock_left_by_a_killed_driver_does_not_block(tmp_path):
    """flock dies with its holder: a driver killed with SIGKILL leaves no stale lock."""
    from mixnas.runs import LOCK_FILE
    from mixnas.search_driver import Search, SearchSettings

    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        from mixnas.search_driver import Search, SearchSettings
        s = Search(SearchSettings(space={str(space)!r}, out={str(out)!r}, trials=2, scheduler="none"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={"PYTHONPATH": str(ROOT),
                                                                         "PATH": "/usr/bin:/bin"}, timeout=120)
    assert res.returncode == -9 and (out / LOCK_FILE).is_file()
    Search(SearchSettings(space=str(space), out=str(out), trials=2, scheduler="none", resume=True)).release()


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB file system (tmpfs, mounted by root as CI and these machines run) for the run folder, so that
    the disk fills for SQLite and for mixnas's own files alike."""
    mount = tmp_path / "disk"
    mount.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                         text=True)
    assert res.returncode == 0, ("the disk-full test mounts a small tmpfs and needs root (as CI runs): "
                                 f"{res.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its file system is full."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_disk_full_is_a_clear_error_and_resume_continues(small_disk, monkeypatch, capsys):
    import mixnas.ray_io
    from mixnas.trial import LocalRunner

    space = write_space(small_disk.parent, "1G")
    out = small_disk / "run"
    finished, filler = [], []
    body = fake_body()

    def filling_body(config, report):
        outcome = body(config, report)
        finished.append(config["digest"])
        if len(finished) == 3:  # the disk fills while the third trial's result is being recorded
            filler.append(_fill(small_disk))
        return outcome

    monkeypatch.setattr(mixnas.ray_io, "run_search", lambda search: LocalRunner(search, filling_body).run())
    args = ["search", "--space", str(space), "--dataset", "digits", "--trials", "6", "--max-epochs", "2",
            "--sampler", "random", "--scheduler", "none", "--seed", "2", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full" in err and "--resume --out" in err and "Traceback" not in err
    import optuna

    study = optuna.load_study(study_name="run", storage=f"sqlite:///{out / 'study.db'}")
    done = {t.number: t.user_attrs["digest"] for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert len(done) >= 2  # every result recorded before the disk filled is there
    import csv

    rows = list(csv.DictReader(open(out / "trials.csv")))  # the last complete version, readable
    assert {int(r["number"]) for r in rows if r["state"] == "COMPLETE"} <= set(done)
    assert not list(out.glob("*.tmp"))

    filler[0].unlink()  # space is free again
    monkeypatch.setattr(mixnas.ray_io, "run_search", lambda search: LocalRunner(search, body).run())
    assert main(["search", "--resume", "--out", str(out)]) == 0
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    for number, digest in done.items():  # nothing finished was lost or changed
        assert trials[number].state.name == "COMPLETE" and trials[number].user_attrs["digest"] == digest
    counted = [t for t in trials if "duplicate_of" not in t.user_attrs and not t.user_attrs.get("requeued")
               and t.user_attrs.get("status") not in ("infeasible", "invalid")]
    assert len(counted) == 6
