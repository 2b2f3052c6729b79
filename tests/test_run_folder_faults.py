"""Damaged run folders: a corrupt or truncated study database, journal, trials.csv or study result file gets a
clear one-line error naming it and is left as it is; a second driver on a study run folder is refused."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from search_helpers import fake_body, write_space

from mixnas.cli import main
from mixnas.errors import MixnasError


def _search(tmp_path: Path, storage: str | None = None) -> Path:
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.trial import LocalRunner

    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    s = Search(SearchSettings(space=str(space), out=str(out), trials=3, scheduler="none", sampler="random",
                              dataset="digits", max_epochs=1, storage=storage))
    LocalRunner(s, fake_body()).run()
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_damaged_study_storage_is_named_and_left_alone(tmp_path, capsys, kind, damage):
    storage = f"journal:{tmp_path / 'study.journal'}" if kind == "journal" else None
    out = _search(tmp_path, storage)
    db = tmp_path / "study.journal" if kind == "journal" else out / "study.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a study\n" * 50)
    before, csv_before = _digest(db), _digest(out / "trials.csv")
    capsys.readouterr()
    for argv in (["search", "--resume", "--out", str(out), "--trials", "5"],
                 ["export", str(out), "--trial", "0", "--onnx", str(tmp_path / "a.onnx")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(db) in err and "Traceback" not in err
        assert "left as it is" in err
    assert _digest(db) == before and _digest(out / "trials.csv") == csv_before  # nothing overwritten


def test_a_damaged_trials_csv_is_rebuilt_from_the_study(tmp_path, capsys, monkeypatch):
    """trials.csv is derived from the study (rewritten after every trial, never read back): a damaged one does
    not stop a resume, which writes it again, complete, from the study."""
    import mixnas.ray_io
    from mixnas.trial import LocalRunner

    out = _search(tmp_path)
    (out / "trials.csv").write_bytes(b"\xff\xfe garbage, \"unclosed\n")
    monkeypatch.setattr(mixnas.ray_io, "run_search", lambda search: LocalRunner(search, fake_body()).run())
    assert main(["search", "--resume", "--out", str(out), "--trials", "4"]) == 0
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len([r for r in rows if r["state"] == "COMPLETE"]) >= 4


def test_a_damaged_search_record_is_named(tmp_path, capsys):
    out = _search(tmp_path)
    for text in ("settings: [unclosed\n", "- a list\n", "\xff\xfe"):
        (out / "search.yaml").write_bytes(text.encode("latin-1"))
        assert main(["search", "--resume", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "search.yaml" in err and "Traceback" not in err


def _study(tmp_path: Path) -> Path:
    """test_study_run's tiny study at one seed: two trials."""
    from test_study_run import TINY

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("seeds: 2", "seeds: 1"))
    return path


def test_a_damaged_study_result_is_named_and_not_rerun(tmp_path, capsys):
    from test_study_run import fake_body as study_body

    from mixnas.study import load_study
    from mixnas.study_run import run_study

    path = _study(tmp_path)
    run = tmp_path / "run"
    run_study(load_study(path), run, body=study_body(set(), []), log=lambda line: None)
    result = run / "results" / "strip_width-1-s0.json"
    for text in ('{"status": "completed", "top1": 7', "[1, 2]", "\x00\x01"):
        result.write_text(text)
        calls: list[int] = []
        with pytest.raises(MixnasError, match="strip_width-1-s0.json: not a"):
            run_study(load_study(path), run, resume=True, body=study_body(set(), calls), log=lambda line: None)
        assert calls == [] and result.read_text() == text  # nothing trained, nothing overwritten
        assert main(["study", "report", str(run)]) == 2
        assert "strip_width-1-s0.json" in capsys.readouterr().err


def test_a_changed_study_is_refused_on_resume(tmp_path):
    from test_study_run import fake_body as study_body

    from mixnas.study import load_study
    from mixnas.study_run import run_study

    path = _study(tmp_path)
    run = tmp_path / "run"
    run_study(load_study(path), run, body=study_body(set(), []), log=lambda line: None)
    path.write_text(path.read_text().replace("epochs: 1", "epochs: 2"))
    calls: list[int] = []
    with pytest.raises(MixnasError, match="defined differently"):
        run_study(load_study(path), run, resume=True, body=study_body(set(), calls), log=lambda line: None)
    assert calls == []


def test_two_study_runs_on_one_folder_are_refused(tmp_path):
    from test_study_run import fake_body as study_body

    from mixnas.runs import lock_run_folder
    from mixnas.study import load_study
    from mixnas.study_run import run_study

    path = _study(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    held = lock_run_folder(run)  # another driver holds the folder
    calls: list[int] = []
    with pytest.raises(MixnasError, match="another mixnas driver is running"):
        run_study(load_study(path), run, body=study_body(set(), calls), log=lambda line: None)
    assert calls == [] and not (run / "study.yaml").exists()
    held.close()
    run_study(load_study(path), run, body=study_body(set(), calls), log=lambda line: None)
    assert len(calls) == 2
