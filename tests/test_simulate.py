"""The simulated backend: `mixnas search --table` replays the real search on a table; refusals; the
efficiency measures the benchmark script builds on."""

from __future__ import annotations

import csv
import math

import pytest
import yaml
from tabular_helpers import write_table

from mixnas import optuna_io
from mixnas.cli import main
from mixnas.efficiency import (
    Scale,
    Strategy,
    hv_curve,
    recovery,
    replay,
    returned,
    score,
    table_points,
    time_to_reach,
    true_front,
)
from mixnas.simulate import epoch_seconds
from mixnas.tabular import Table


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("bench"))


def _trials(run):
    resolved = yaml.safe_load((run / "search.yaml").read_text())["resolved"]
    study = optuna_io.load_existing(optuna_io.storage_for(resolved["storage"]), resolved["study_name"])
    return study.get_trials(deepcopy=False)


def test_replayed_search_writes_the_usual_run_folder(table_dir, tmp_path, capsys):
    run = tmp_path / "run"
    space = table_dir.parent / "tiny_bench.yaml"
    assert main(["search", "--space", str(space), "--table", str(table_dir), "--trials", "20", "--out", str(run),
                 "--concurrency", "3"]) == 0
    out = capsys.readouterr().out
    assert "replayed on the table" in out and "simulated time" in out
    for name in ("search.yaml", "trials.csv", "pareto.yaml", "search.log", "study.journal"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "trials.csv")))
    assert len([r for r in rows if not r["duplicate_of"]]) == 20  # re-used repeats are not counted in --trials
    table = Table(table_dir)
    trials = [t for t in _trials(run) if "sim_end" in t.user_attrs]
    assert trials
    for t in trials:
        a = t.user_attrs
        rec = table.get(a["digest"])
        epochs = a["fidelity"]
        assert a["curve"][-1]["val_top1"] == rec["curve"][epochs - 1]["val_top1"]  # the table's numbers
        spent = sum(epoch_seconds(r) for r in rec["curve"][:epochs])
        assert a["sim_end"] - a["sim_start"] == pytest.approx(spent, abs=2e-3)
        assert t.state.name == ("COMPLETE" if epochs == 8 else "PRUNED")
    assert any(t.state.name == "PRUNED" for t in trials)  # MO-ASHA stopped some at a rung
    assert yaml.safe_load((run / "search.yaml").read_text())["settings"]["grace"] == table.recommended()["grace"]
    by_worker: dict[int, list] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append((t.user_attrs["sim_start"], t.user_attrs["sim_end"]))
    assert set(by_worker) <= {0, 1, 2} and len(by_worker) == 3
    for spans in by_worker.values():  # one trial at a time per worker, no gaps while candidates remain
        spans.sort()
        assert all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:]))
    front = yaml.safe_load((run / "pareto.yaml").read_text())["pareto"]
    assert front and all(e["objectives"]["top1"] > 0 for e in front)
    assert sorted(p.name for p in (run / "pareto").iterdir()) == sorted(e["file"][7:] for e in front)  # only it


def test_grace_defaults_to_the_tables_recommendation(table_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(Table, "recommended", lambda self: {"grace": 3, "max_epochs": 8, "max_epochs_rho": None})
    space = str(table_dir.parent / "tiny_bench.yaml")
    for extra, want in (([], 3), (["--grace", "2"], 2)):
        run = tmp_path / f"run{want}"
        assert main(["search", "--space", space, "--table", str(table_dir), "--trials", "12", "--out", str(run)]
                    + extra) == 0
        assert yaml.safe_load((run / "search.yaml").read_text())["settings"]["grace"] == want
        pruned = [t for t in _trials(run) if t.state.name == "PRUNED" and t.user_attrs.get("status") == "pruned"]
        assert pruned and all(t.user_attrs["fidelity"] >= want for t in pruned)  # no rung below the grace


def test_workers_share_the_simulated_clock(table_dir, tmp_path):
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.simulate import SimulatedRunner

    table = Table(table_dir)
    clocks = {}
    for k in (1, 4):
        s = SearchSettings(space=str(table_dir / "space.yaml"), out=str(tmp_path / f"k{k}"), trials=24,
                           sampler="random", scheduler="none", max_epochs=8, concurrency=k, storage="memory",
                           train={"fraction": 0.1, "val_fraction": 0.2}, record=False, seed=3)
        search = Search(s)
        runner = SimulatedRunner(search, table)
        runner.run()
        clocks[k] = runner.clock
        assert not (tmp_path / f"k{k}").exists()  # record=False writes nothing
    assert clocks[4] < clocks[1] / 2.5  # four workers in parallel


def test_a_search_the_table_cannot_answer_is_refused(table_dir, tmp_path, capsys):
    space = table_dir.parent / "tiny_bench.yaml"
    wider = tmp_path / "wider.yaml"
    wider.write_text(space.read_text().replace("choice: [16, 32]", "choice: [16, 32, 64]"))
    base = ["search", "--table", str(table_dir), "--trials", "5"]
    cases = [
        (["--space", str(wider), "--out", str(tmp_path / "a")], "12 of the 36 architectures"),
        (["--space", str(space), "--out", str(tmp_path / "b"), "--fraction", "0.5"], "fraction = 0.1"),
        (["--space", str(space), "--out", str(tmp_path / "c"), "--max-epochs", "9"], "records 8 epochs"),
        (["--space", str(space), "--out", str(tmp_path / "d"), "--dataset", "fashion-mnist"], "trained on 'digits'"),
        (["--space", str(space), "--out", str(tmp_path / "e"), "--table", str(tmp_path)], "no mixnas-bench table"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_an_incomplete_table_is_refused(tmp_path, capsys):
    folder = write_table(tmp_path, drop=2)
    assert main(["search", "--space", str(tmp_path / "tiny_bench.yaml"), "--table", str(folder),
                 "--out", str(tmp_path / "run")]) == 2
    assert "2 of the 24 architectures" in capsys.readouterr().err


def test_scale_and_hypervolume_shares(table_dir):
    table = Table(table_dir)
    pts = table_points(table, ["top1", "macs"])
    scale = Scale.of(["top1", "macs"], ["max", "min"], list(pts.values()))
    best = max(pts.values(), key=lambda p: p[0])
    cheapest = min(pts.values(), key=lambda p: p[1])
    assert scale(best)[0] == 0.0 and scale(cheapest)[1] == 0.0
    assert all(0.0 <= x <= 1.0 for p in pts.values() for x in scale(p))
    truth = true_front(pts, ["max", "min"])
    hv_true = scale.hv([pts[d] for d in truth])
    assert scale.hv(list(pts.values())) == pytest.approx(hv_true)  # dominated points add nothing
    order = sorted(pts)
    events = [(float(i), d, tuple(pts[d])) for i, d in enumerate(order)]
    curve = hv_curve(events, pts, scale, [0.0, 5.0, 100.0])
    assert curve[0] <= curve[1] <= curve[2] == pytest.approx(hv_true)
    assert time_to_reach(events, pts, scale, hv_true) <= len(order) - 1
    assert time_to_reach(events[:1], pts, scale, hv_true + 1) == math.inf
    assert recovery(returned(events, ["max", "min"], 100.0), truth) == 1.0
    assert recovery([], truth) == 0.0


def test_a_run_is_scored_at_the_tables_highest_fidelity_not_what_it_saw():
    """What a run returns is chosen by the values it recorded; a misranking fidelity costs it the better
    architecture at the table's highest fidelity."""
    pts = {"a": [90.0, 100.0], "b": [80.0, 100.0], "c": [50.0, 10.0]}
    scale = Scale.of(["top1", "macs"], ["max", "min"], list(pts.values()))
    saw = [(1.0, "a", (70.0, 100.0)), (2.0, "b", (85.0, 100.0)), (3.0, "c", (50.0, 10.0))]
    assert sorted(returned(saw, ["max", "min"])) == ["b", "c"]
    assert score(returned(saw, ["max", "min"]), pts, scale) == pytest.approx(scale.hv([pts["b"], pts["c"]]))
    honest = [(t, d, tuple(pts[d])) for t, d, _ in saw]
    assert hv_curve(saw, pts, scale, [3.0])[0] < hv_curve(honest, pts, scale, [3.0])[0]
    assert time_to_reach(saw, pts, scale, scale.hv([pts["a"], pts["c"]])) == math.inf
    assert returned(saw, ["max", "min"], until=1.5) == ["a"]


def test_replay_is_deterministic_per_seed(table_dir):
    table = Table(table_dir)
    space = str(table_dir / "space.yaml")
    kw = dict(objectives="top1:max,macs:min", workers=2, budget_s=40.0, trials=60)
    a = replay(table, space, Strategy("tpe", "tpe", "moasha"), 1, **kw)
    b = replay(table, space, Strategy("tpe", "tpe", "moasha"), 1, **kw)
    assert a == b and a and all(t <= 40.0 + max(epoch_seconds(r) for r in table.records[0]["curve"]) * 8
                                for t, _, _ in a)
    assert all(list(v) == [table.get(d)["curve"][-1]["val_top1"], table.get(d)["macs"]] for _, d, v in a)


def test_bench_dashboard_of_the_whole_table(table_dir, tmp_path, capsys):
    run = tmp_path / "all"
    assert main(["bench", "dashboard", str(table_dir), "--out", str(run)]) == 0
    assert "24 architectures" in capsys.readouterr().out
    rows = list(csv.DictReader(open(run / "trials.csv")))
    assert len(rows) == 24 and {r["state"] for r in rows} == {"COMPLETE"}
    assert len({r["digest"] for r in rows}) == 24  # every architecture once
    assert (run / "report.html").stat().st_size > 100_000


@pytest.mark.parametrize("sampler", ["nsga3", "gp"])
def test_every_optuna_sampler_searches_the_table(table_dir, sampler):
    """The peer samplers run the same search (replayed: seconds) and find completed architectures."""
    table = Table(table_dir)
    events = replay(table, str(table_dir / "space.yaml"), Strategy(sampler, sampler, "moasha"), 0,
                    objectives="top1:max,macs:min", workers=2, budget_s=60.0, trials=16)
    assert events and all(d in table.arch_records() for _, d, _ in events)


def test_a_diverged_architecture_replays_as_a_failed_trial(tmp_path):
    from mixnas.tabular import TABLE_FILE, append_record

    folder = write_table(tmp_path)
    table = Table(folder)
    victim = sorted(table.arch_records())[0]
    rec = dict(table.get(victim), status="diverged", reason="the training loss became nan at epoch 3")
    rec["curve"] = rec["curve"][:2]
    append_record(folder / TABLE_FILE, rec)
    run = tmp_path / "run"
    assert main(["search", "--space", str(folder / "space.yaml"), "--table", str(folder), "--trials", "60",
                 "--sampler", "random", "--scheduler", "none", "--out", str(run)]) == 0
    failed = [t for t in _trials(run) if t.user_attrs.get("digest") == victim and "duplicate_of" not in t.user_attrs]
    assert failed and all(t.state.name == "FAIL" and "nan at epoch 3" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.user_attrs["fidelity"] == 2 for t in failed)
