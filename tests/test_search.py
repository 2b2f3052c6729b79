"""The Optuna side of the search without Ray: bookkeeping, NaN, de-duplication, constraints, outputs, resume."""

from __future__ import annotations

import csv

import optuna
import pytest
import yaml
from search_helpers import fake_body, write_space

from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner


def make(tmp_path, trials=12, max_macs="1G", **kw):
    space = write_space(tmp_path, max_macs)
    return Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=trials, **kw))


def states(search):
    return [t.state.name for t in search.trials()]


def trained(trials):
    """The trials --trials counts: not re-used repeats, not infeasible / invalid, not failed and re-queued."""
    return [t for t in trials if "duplicate_of" not in t.user_attrs and not t.user_attrs.get("requeued")
            and t.user_attrs.get("status") not in ("infeasible", "invalid")]


def test_complete_vs_pruned_bookkeeping(tmp_path):
    s = make(tmp_path, trials=12, common_fidelity_front=True)
    LocalRunner(s, fake_body()).run()
    assert (tmp_path / "run" / "pareto_common_fidelity.yaml").exists()
    trials = s.trials()
    assert len(trained(trials)) == 12 and "RUNNING" not in states(s)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.user_attrs["status"] == "pruned"]
    assert done and pruned
    for t in done:
        assert t.user_attrs["fidelity"] == 3 and len(t.user_attrs["curve"]) == 3
        assert t.values[0] == t.user_attrs["curve"][-1]["val_top1"]
    for t in pruned:
        assert t.user_attrs["fidelity"] < 3 and t.values is None
    for t in trials:  # every record carries the provenance
        for key in ("arch", "digest", "seed", "code", "params", "macs"):
            assert key in t.user_attrs, key
    front = s.front()
    assert front and all(t.state.name == "COMPLETE" for t in front)
    f, common = s.common_fidelity_front()
    assert f == 1 and common
    assert any(t.state.name == "PRUNED" for t in trials if t.user_attrs.get("fidelity") == 1)
    for t, values in common:
        assert values[0] == t.user_attrs["curve"][0]["val_top1"]


def test_no_early_stopping_completes_everything(tmp_path):
    s = make(tmp_path, trials=6, scheduler="none", sampler="random")
    LocalRunner(s, fake_body()).run()
    assert {t.user_attrs["status"] for t in s.trials()} <= {"completed"}


def test_nan_objective_is_failed_with_reason(tmp_path):
    s = make(tmp_path, trials=10, sampler="random", scheduler="none")
    LocalRunner(s, fake_body(nan_dims=(16,))).run()
    failed = [t for t in s.trials() if t.state.name == "FAIL"]
    assert failed and "RUNNING" not in states(s)
    for t in failed:
        assert t.user_attrs["arch"]["stem"]["dim"] == 16
        assert "top1" in t.user_attrs["fail_reason"] and "nan" in t.user_attrs["fail_reason"]


def test_duplicates_reuse_the_record(tmp_path):
    calls = []
    s = make(tmp_path, trials=15, sampler="random", scheduler="none")
    LocalRunner(s, fake_body(calls)).run()
    assert len(calls) == len(set(calls))  # nothing trained twice
    dups = [t for t in s.trials() if "duplicate_of" in t.user_attrs]
    assert dups  # 12 architectures, 15 trials
    # repeats are free, so not counted: all 12 are trained, then the search stops on a streak of repeats
    assert len(trained(s.trials())) == 12 == len(set(calls))
    log = (tmp_path / "run" / "search.log").read_text()
    assert "proposals all repeated recorded architectures" in log and "space is exhausted" in log
    by_number = {t.number: t for t in s.trials()}
    for t in dups:
        orig = by_number[t.user_attrs["duplicate_of"]]
        assert t.user_attrs["digest"] == orig.user_attrs["digest"] and t.state == orig.state
        assert t.values == orig.values


def test_infeasible_recorded_with_constraints_never_trained(tmp_path):
    calls = []
    s = make(tmp_path, trials=10, max_macs="15000", sampler="random", scheduler="none")
    LocalRunner(s, fake_body(calls)).run()
    infeasible = [t for t in s.trials() if t.user_attrs.get("status") == "infeasible"]
    assert infeasible
    feasible = {t.user_attrs["digest"] for t in s.trials() if t.user_attrs.get("status") != "infeasible"}
    # recorded, but not counted in --trials: every feasible architecture is trained once (fewer than 10 exist)
    assert len(trained(s.trials())) == len(feasible) == len(calls) < 10
    for t in infeasible:
        assert t.state.name == "PRUNED" and t.constraints["max_macs"] > 0 and t.user_attrs["fidelity"] == 0
        assert t.user_attrs["digest"] not in calls and t.user_attrs["macs"] > 15000


def test_outputs(tmp_path):
    s = make(tmp_path, trials=8, scheduler="none", sampler="random")
    LocalRunner(s, fake_body()).run()
    out = tmp_path / "run"
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len([r for r in rows if not r["duplicate_of"]]) == 8
    for key in ("number", "state", "digest", "top1", "macs", "fidelity", "p:arch.stem.dim"):
        assert key in rows[0]
    doc = yaml.safe_load((out / "pareto.yaml").read_text())
    assert len(doc["pareto"]) == len(s.front())
    for entry in doc["pareto"]:
        arch = ArchConfig.from_yaml((out / entry["file"]).read_text())
        assert arch.digest() == entry["digest"]
    settings = yaml.safe_load((out / "search.yaml").read_text())
    assert settings["resolved"]["sampler"] == "random" and settings["resolved"]["max_epochs"] == 3
    assert "progress" not in s.progress() and "Pareto" in s.progress()


def test_existing_study_needs_resume_and_resume_extends(tmp_path):
    s = make(tmp_path, trials=4, scheduler="none")
    LocalRunner(s, fake_body()).run()
    with pytest.raises(MixnasError, match="--resume"):
        make(tmp_path, trials=4)
    calls = []
    s2 = make(tmp_path, trials=7, scheduler="none", resume=True)
    LocalRunner(s2, fake_body(calls)).run()
    assert len(trained(s2.trials())) == 7
    first = {t.user_attrs["digest"] for t in s2.trials()[:4] if t.state.name == "COMPLETE"}
    assert not first & set(calls)  # completed architectures were not trained again
    with pytest.raises(MixnasError, match="no study"):
        Search(SearchSettings(space=str(tmp_path / "tiny.yaml"), out=str(tmp_path / "other"), resume=True))


def test_resume_fails_and_requeues_running(tmp_path):
    s = make(tmp_path, trials=5, scheduler="none")
    cand = s.next_candidate()  # the "crash": asked, never told
    assert cand is not None and states(s) == ["RUNNING"]
    s.release()  # the crashed driver's process is gone, and the OS with it drops the run folder's lock
    s2 = make(tmp_path, trials=5, scheduler="none", resume=True)
    first = s2.trials()[0]
    assert first.state.name == "FAIL" and first.user_attrs["requeued"]
    nxt = s2.next_candidate()
    assert nxt.digest == cand.digest and nxt.arch == cand.arch  # the same parameters come back first
    LocalRunner(s2, fake_body()).run()
    s2.finish(nxt.number, fake_body()(nxt.config(), lambda row: True))
    assert len(trained(s2.trials())) == 5
    assert "RUNNING" not in states(s2)


def test_user_errors(tmp_path):
    with pytest.raises(MixnasError, match="sampler"):
        make(tmp_path, sampler="cmaes")
    with pytest.raises(MixnasError, match="scheduler"):
        make(tmp_path, scheduler="pbt")
    with pytest.raises(MixnasError, match="objectives"):
        make(tmp_path, objectives="top5:max")
    with pytest.raises(MixnasError, match="dataset"):
        make(tmp_path, dataset="imagenet")
    assert optuna.__version__


def test_slot_gaps_are_per_worker_and_skip_duplicates():
    from types import SimpleNamespace

    from mixnas.search_driver import overhead_line, slot_gaps

    def t(pid, start, end, **extra):
        return SimpleNamespace(user_attrs={"pid": pid, "node_id": "n", "worker_start": start, "worker_time": end,
                                           "wall_time_s": end - start, **extra})

    trials = [t(1, 0.0, 10.0), t(1, 10.5, 20.0), t(2, 1.0, 9.0), t(2, 9.2, 30.0), t(1, 21.0, 25.0),
              t(3, 0.0, 5.0), t(1, 0, 0, duplicate_of=0)]
    assert sorted(round(g, 6) for g in slot_gaps(trials)) == [0.2, 0.5, 1.0]  # pid 3 ran once: no gap
    line = overhead_line(trials)
    assert line is not None and "0.57 s" in line
    assert overhead_line(trials[-2:]) is None



def test_a_run_records_its_plugins_and_every_reader_reloads_them(tmp_path, capsys, forget):
    from plugin_helpers import unload, write_plugin_space

    from mixnas.analysis import load_run
    from mixnas.cli import main
    from mixnas.cli.resume import read_record
    from mixnas.plugins import file_sha256
    from mixnas.registry import mixer_families

    space, plugin = write_plugin_space(tmp_path, "plug_run")
    run = tmp_path / "run"
    search = Search(SearchSettings(space=str(space), out=str(run), trials=3, sampler="random"))
    LocalRunner(search, fake_body()).run()
    sha = file_sha256(plugin)
    assert [(r["file"], r["sha256"]) for r in yaml.safe_load((run / "search.yaml").read_text())["plugins"]
            if r["file"] == str(plugin.resolve())] == [(str(plugin.resolve()), sha)]
    front = yaml.safe_load((run / "pareto.yaml").read_text())
    assert str(plugin.resolve()) in front["plugins"]  # `mixnas train pareto.yaml#N` loads it first
    first = front["pareto"][0]["trial"]

    unload(plugin, "plug_run")  # each reader below as in a new process
    assert main(["inspect", f"{run}/pareto.yaml#{first}"]) == 0
    assert "plug_run(scale=" in capsys.readouterr().out
    unload(plugin, "plug_run")
    read_record(run)  # search --resume
    assert "plug_run" in mixer_families("token")
    unload(plugin, "plug_run")
    complete = [t for t in search.trials() if t.state.name == "COMPLETE"]
    assert complete and len(load_run(run).complete()) == len(complete)
    assert capsys.readouterr().err == ""

    plugin.write_text(plugin.read_text() + "# edited after the run\n")
    unload(plugin, "plug_run")
    load_run(run)
    assert f"mixnas: warning: {run}/search.yaml: plugins[" in capsys.readouterr().err  # changed: said, still read

    plugin.unlink()
    unload(plugin, "plug_run")
    assert main(["dashboard", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mixnas dashboard: error: {run}/search.yaml: plugins[") and len(err.splitlines()) == 1
    assert f"the plugin file {plugin.resolve()} this run was made with is gone" in err
