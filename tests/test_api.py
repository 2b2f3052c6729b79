"""The Python API (mixnas.api, re-exported by the package root): search, load_run and Run, dashboards, studies, and
a space inside a user's own Optuna objective."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas
import pytest
import yaml
from optuna.trial import FixedTrial
from search_helpers import fake_body, write_space

import mixnas
from mixnas import api
from mixnas.cli import main
from mixnas.complexity import complexity
from mixnas.errors import MixnasError
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner

ROOT = Path(__file__).resolve().parents[1]
BENCH_SPACE = ROOT / "search_spaces" / "mixnas_bench.yaml"
TABLE = ROOT / "bench" / "tables" / "fmnist32"
COLUMNS = ("number", "state", "category", "status", "top1", "macs", "params", "latency_ms", "fidelity", "wall_time_s",
           "digest", "seed", "duplicate_of", "driver", "reason", "mixnas_version", "git_commit", "git_dirty",
           "datetime_start", "datetime_complete", "arch")


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> api.Run:
    """A search through the API, replayed on the shipped benchmark table (seconds, no training)."""
    out = tmp_path_factory.mktemp("api") / "replay"
    return api.search(BENCH_SPACE, table=TABLE, trials=12, out=out, quiet=True)


def test_the_package_root_exports_the_api_lazily():
    code = ("import sys, inspect, mixnas; assert 'mixnas.api' not in sys.modules and 'optuna' not in sys.modules; "
            "assert mixnas.search is mixnas.api.search and 'trials' in inspect.signature(mixnas.search).parameters; "
            "from mixnas.search_driver import Search; assert mixnas.search is mixnas.api.search; "
            "assert mixnas.load_run is mixnas.api.load_run and mixnas.load_space is mixnas.api.load_space; "
            "assert 'pandas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert mixnas.run_study is api.run_study and mixnas.Run is api.Run
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mixnas.nope  # noqa: B018


def test_search_returns_a_run_whose_trials_are_the_study(replay):
    frame = replay.trials()
    study = replay.study
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert list(frame.columns[:len(COLUMNS)]) == list(COLUMNS)
    assert list(frame["number"]) == [t.number for t in trials] and len(frame) >= 12
    assert list(frame["state"]) == [t.state.name for t in trials]
    assert list(frame["digest"]) == [t.user_attrs["digest"] for t in trials]
    for row, t in zip(frame.to_dict("records"), trials):
        assert row["status"] == t.user_attrs["status"] and row["seed"] == t.user_attrs["seed"]
        assert row["macs"] == t.user_attrs["macs"] and row["params"] == t.user_attrs["params"]
        assert row["arch"] == t.user_attrs["arch"] and row["mixnas_version"] == mixnas.__version__
        given = {k[2:]: v for k, v in row.items() if k.startswith("p:") and not pandas.isna(v)}
        assert given == t.params  # a conditional parameter is NaN in the trials without it
        if t.state.name == "COMPLETE":
            assert [row[m] for m in ("top1", "macs")] == t.values
    assert frame.attrs["objectives"] == replay.objectives == ["top1:max", "macs:min"]
    assert set(frame["category"]) <= {"pareto", "dominated", "pruned", "duplicate", "failed"}
    assert frame["top1"].dtype == "float64" and frame.attrs["units"]["latency_ms"] == "ms per batch"
    assert list(frame["latency_ms"]) == [t.user_attrs["latency_ms"] for t in trials]  # the table's


def test_the_front_is_pareto_yaml(replay):
    doc = yaml.safe_load((replay.path / "pareto.yaml").read_text())
    front = replay.front()
    assert list(front["number"]) == sorted(e["trial"] for e in doc["pareto"]) and len(front) >= 2
    assert set(front["state"]) == {"COMPLETE"}
    archs = replay.front_archs()
    by_trial = {e["trial"]: e for e in doc["pareto"]}
    for n, arch in zip(front["number"], archs):
        assert arch.digest() == by_trial[n]["digest"] and arch.name == f"{replay.name}-t{n}"
    assert replay.arch(int(front["number"][0])) == archs[0]
    with pytest.raises(MixnasError, match="no trial 999"):
        replay.arch(999)


def test_search_prints_what_the_command_prints_unless_quiet(tmp_path, capsys):
    run = api.search(BENCH_SPACE, table=TABLE, trials=4, out=tmp_path / "loud", seed=1)
    out = capsys.readouterr().out
    assert out.startswith(f"search loud: space {BENCH_SPACE}, dataset fashion-mnist, ")
    assert "trials: 4 trained | " in out and f"written: {tmp_path / 'loud' / 'trials.csv'}" in out
    assert isinstance(run, api.Run) and run.path == tmp_path / "loud"
    assert "trial 0: " in (tmp_path / "loud" / "search.log").read_text()


def test_resume_takes_the_recorded_settings(tmp_path, capsys):
    out = tmp_path / "grow"
    first = api.search(BENCH_SPACE, table=TABLE, trials=5, out=out, sampler="random", quiet=True)
    before = len(first.trials())
    grown = api.search(out=out, resume=True, trials=9, quiet=True)  # the space, table and sampler: recorded
    frame = grown.trials()
    assert len(frame) > before and list(frame["number"][:before]) == list(range(before))
    assert (frame["category"].isin(["pareto", "dominated", "pruned", "failed"])).sum() == 9
    with pytest.raises(MixnasError, match="--sampler tpe differs from the search recorded"):
        api.search(out=out, resume=True, sampler="tpe", quiet=True)


def test_keywords_take_python_values_and_match_the_command(tmp_path, capsys):
    space = write_space(tmp_path)
    flags = ["--objectives", "top1:max,params:min", "--resources", "cpu=1,gpu=0", "--trials", "3"]
    assert main(["search", "--space", str(space), "--out", str(tmp_path / "run"), "--dry-run", *flags]) == 0
    by_command = capsys.readouterr().out
    assert api.search(api.load_space(space), out=tmp_path / "run", objectives=["top1:max", "params:min"],
                      resources={"cpu": 1, "gpu": 0}, trials=3, dry_run=True) is None
    assert capsys.readouterr().out == by_command and "objectives top1:max, params:min" in by_command
    assert not (tmp_path / "run").exists()
    with pytest.raises(MixnasError, match="--concurrency must be at least 1"):
        api.search(space, out=tmp_path / "run", concurrency=0, quiet=True)
    with pytest.raises(MixnasError, match=r"plugins\[0\]: plugin file 'nope.py' not found"):
        api.search(space, out=tmp_path / "run", plugins=["nope.py"], dry_run=True)
    with pytest.raises(MixnasError, match="unknown sampler 'cmaes'"):
        mixnas.search(space, out=tmp_path / "run", sampler="cmaes", quiet=True)  # the package root's name


def test_load_run_of_a_run_folder(tmp_path):
    space = write_space(tmp_path, "0.06M")  # a MACs budget that leaves 2 of the 12 candidates infeasible
    out = tmp_path / "run"
    LocalRunner(Search(SearchSettings(space=str(space), out=str(out), trials=6, sampler="random", seed=2)),
                fake_body()).run()
    run = mixnas.load_run(out)
    frame = run.trials()
    trials = sorted(run.study.get_trials(), key=lambda t: t.number)
    assert list(frame["state"]) == [t.state.name for t in trials]
    infeasible = frame[frame["category"] == "infeasible"]
    assert len(infeasible) and (infeasible["macs"] > 60_000).all() and infeasible["top1"].isna().all()
    assert list(frame["fidelity"].astype(int)) == [t.user_attrs["fidelity"] for t in trials]
    assert set(run.front()["category"]) == {"pareto"}
    with pytest.raises(MixnasError, match="not a search run folder"):
        api.load_run(tmp_path)


def test_dashboard_writes_the_report(replay, tmp_path):
    path = replay.dashboard(tmp_path / "dash" / "report.html", bootstrap=20)
    assert path == tmp_path / "dash" / "report.html" and "plotly" in path.read_text()[:2_000_000]
    written = api.write_dashboard([replay.path], tmp_path / "two.html", js="file", bootstrap=20)
    assert written.path.is_file() and (written.files / "plotly.min.js").is_file() and written.figures > 3
    with pytest.raises(MixnasError, match="--bootstrap must be at least 10"):
        api.write_dashboard([replay], tmp_path / "x.html", bootstrap=5)
    assert not (tmp_path / "x.html").exists()


STUDY = f"""\
name: tiny
base: {ROOT / "examples" / "strip_mlp_1m_fmnist.yaml"}
task: {{dataset: digits, image_size: 16}}
train: {{epochs: 1, batch_size: 64, fraction: 0.5}}
factors:
  strip_width: {{path: "stages[0].token_mixer.strip_width", levels: [1, 3]}}
seeds: 1
"""


def test_run_study_trains_reports_and_resumes(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(STUDY)
    out = tmp_path / "study"
    run = api.run_study(tmp_path / "tiny.yaml", out=out, runner="local", quiet=True)
    assert capsys.readouterr() == ("", "")
    assert run.keys == ["strip_width-1-s0", "strip_width-3-s0"] and run.completed == run.keys and not run.incomplete
    frame = run.trials()
    assert list(frame["strip_width"]) == [1, 3] and (frame["top1"] > 0).all() and (frame["params"] > 0).all()
    assert run.report["md"].is_file() and run.report["md"] == out / "report.md"
    again = api.run_study(tmp_path / "tiny.yaml", out=out, resume=True, runner="local", report=False)
    captured = capsys.readouterr()
    assert "2 already done, 0 to run" in captured.err and "study tiny: 2/2 trials completed" in captured.out
    assert again.results == run.results and again.report is None
    assert api.study_report(out, tmp_path / "rep")["csv"] == tmp_path / "rep" / "report.csv"
    loaded = mixnas.load_study_run(out)
    assert (loaded.keys, loaded.results, loaded.report) == (run.keys, run.results, run.report)
    with pytest.raises(MixnasError, match="not a study run"):
        api.load_study_run(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "study.yaml").write_text("name: tiny\ntrials: [../../secret]\n")
    with pytest.raises(MixnasError, match="not a study run's record"):
        api.load_study_run(tmp_path / "bad")
    with pytest.raises(MixnasError, match="--address needs the ray runner"):
        api.run_study(tmp_path / "tiny.yaml", out=tmp_path / "x", runner="local", address="auto")


def test_study_run_command_reports_the_trials_the_api_left_incomplete(tmp_path, monkeypatch, capsys):
    """``mixnas study run`` is api.run_study plus one error line for the trials that did not complete."""
    from mixnas import trial
    from mixnas.trial import Outcome

    def body(config, report):
        if config["arch"]["stages"][0]["token_mixer"]["strip_width"] == 3:
            raise RuntimeError("worker died")
        return Outcome("completed", [{"epoch": 1, "val_top1": 50.0}], wall_time_s=0.1)

    monkeypatch.setattr(trial, "run_candidate", body)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    out = tmp_path / "study"
    assert main(["study", "run", str(tmp_path / "tiny.yaml"), "--out", str(out), "--runner", "local"]) == 2
    captured = capsys.readouterr()
    assert f"study tiny: 1/2 trials completed; report {out / 'report.md'}" in captured.out
    assert captured.err.endswith(f"1 trial(s) did not complete (strip_width-3-s0); see {out}/results, then run again "
                                 "with --resume\n")
    assert api.load_study_run(out).incomplete == ["strip_width-3-s0"]


HEADS = """\
name: heads
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10, objectives: [macs:min, params:min]}
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: {choice: [8, 16]}}
  head: {norm: layernorm, pool: mean}
  stages:
    count: 1
    depth: {choice: [1, 2]}
    token_mixer:
      attention: {num_heads: {choice: [2, 3]}}
    channel_mixer:
      mlp: {channel_hidden_dim: {ratio: {choice: [1, 2]}}}
"""


def test_a_space_inside_a_users_optuna_objective(tmp_path):
    """space.sample(trial) in one's own objective: an invalid architecture (3 heads do not divide the width)
    raises InvalidCandidate, which the objective turns into a pruned trial."""
    (tmp_path / "heads.yaml").write_text(HEADS)
    space = mixnas.load_space(tmp_path / "heads.yaml")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        try:
            arch = space.sample(trial)
        except mixnas.InvalidCandidate as err:
            raise optuna.TrialPruned(str(err)) from None
        cost = complexity(arch)
        return cost.macs, cost.params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=12)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert done and pruned and len(done) + len(pruned) == 12
    assert all(t.params["arch.stages.token_mixer.attention.num_heads"] == 3 for t in pruned)
    assert {n for t in study.trials for n in t.params} == {s.name for s in space.params()}
    for t in done:  # the parameters replay the architecture, whose cost the objective returned
        cost = complexity(space.sample(FixedTrial(t.params)))
        assert t.values == [cost.macs, cost.params]


def test_sampler_options_reach_the_sampler_are_recorded_and_kept_on_resume(tmp_path, capsys, monkeypatch):
    from mixnas import optuna_io

    made = []
    real = optuna_io.make_sampler

    def spy(kind, seed, **kw):
        made.append((kind, dict(kw.get("options") or {})))
        return real(kind, seed, **kw)

    monkeypatch.setattr(optuna_io, "make_sampler", spy)
    out = tmp_path / "opts"
    api.search(BENCH_SPACE, table=TABLE, trials=5, out=out, sampler="tpe", sampler_options={"n_startup_trials": 3},
               quiet=True)
    assert made == [("tpe", {"n_startup_trials": 3})]
    assert yaml.safe_load((out / "search.yaml").read_text())["settings"]["sampler_options"] == {"n_startup_trials": 3}
    api.search(out=out, resume=True, trials=7, quiet=True)  # the record's options, not the defaults
    assert made[-1] == ("tpe", {"n_startup_trials": 3})
    with pytest.raises(MixnasError, match="--sampler-option .* differs from the search recorded"):
        api.search(out=out, resume=True, sampler_options=["n_startup_trials=4"], quiet=True)
    flags = ["search", "--space", str(BENCH_SPACE), "--table", str(TABLE), "--out", str(tmp_path / "dry"),
             "--sampler", "nsga2",
             "--sampler-option", "population_size=16", "--sampler-option", "crossover_prob=0.8", "--dry-run"]
    assert main(flags) == 0
    assert "sampler nsga2 (crossover_prob=0.8, population_size=16)" in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    (["population_size"], "expected KEY=VALUE"),
    (["=3"], "expected KEY=VALUE"),
    (["seed=3"], "the sampler's seed is --seed's"),
    ({"population_size": [1, 2]}, "expected a number, a bool or a string"),
    (["populaton_size=16"], r"options \['populaton_size'\] are not all arguments of NSGAIISampler"),
])
def test_bad_sampler_options_are_one_line_before_anything_runs(tmp_path, options, message):
    with pytest.raises(MixnasError, match=message):
        api.search(BENCH_SPACE, table=TABLE, out=tmp_path / "bad", sampler="nsga2", sampler_options=options,
                   dry_run=True)
    assert not (tmp_path / "bad").exists()


def test_sampler_option_values_are_read_as_yaml_scalars():
    assert api.parse_sampler_options(["population_size=16", "constant_liar=false", "prob=0.5", "name=x"]) == \
        {"population_size": 16, "constant_liar": False, "prob": 0.5, "name": "x"}
