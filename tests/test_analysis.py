"""Design-space analysis (mixnas/analysis.py): the pure data functions, on hand-made trials."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from _archs import tiny_mixer, tiny_pyramid

from mixnas import analysis as A
from mixnas import optuna_io
from mixnas.errors import MixnasError
from mixnas.pareto import hypervolume

OBJ = [("top1", "max"), ("macs", "min")]


def rec(number, state="COMPLETE", status="completed", top1=None, macs=None, digest=None, **kw):
    r = {"number": number, "state": state, "status": status, "top1": top1, "macs": macs, "params": None,
         "latency_ms": None, "digest": digest or f"d{number}", "duplicate_of": None, "fidelity": 2,
         "features": {}, "summary": f"arch {number}", "start_s": float(number), "end_s": float(number) + 1}
    r.update(kw)
    return r


def make_run(records, trials=(), objectives=OBJ, name="run", space="space") -> A.Run:
    A.classify(records, objectives)
    return A.Run(name=name, path=Path("/nonexistent"), space=space, objectives=list(objectives), max_epochs=2,
                 records=records, trials=list(trials))


# -- classification and fronts ----------------------------------------------------------------------------------


def test_classify_pareto_dominated_pruned_infeasible():
    records = [rec(0, top1=80, macs=10), rec(1, top1=70, macs=20),                    # 1 dominated by 0
               rec(2, top1=85, macs=30), rec(3, "PRUNED", "pruned", top1=90, macs=1),  # pruned never on the front
               rec(4, "PRUNED", "infeasible", macs=500), rec(5, "PRUNED", "invalid"),
               rec(6, "FAIL", "failed", macs=5), rec(7, top1=80, macs=10, duplicate_of=0, digest="d0"),
               rec(8, top1=80, macs=10, digest="d0"), rec(9, "RUNNING", "")]
    A.classify(records, OBJ)
    assert [r["category"] for r in records] == ["pareto", "dominated", "pareto", "pruned", "infeasible", "invalid",
                                                 "failed", "duplicate", "duplicate", "running"]
    run = make_run(records)
    assert [r["number"] for r in run.complete()] == [0, 1, 2]
    pts = A.pareto_points(run, ["top1", "macs"])
    assert [r["number"] for r in pts["front"]] == [0, 2]  # sorted by MACs, the x axis
    assert [r["number"] for r in pts["dominated"]] == [1]
    assert [r["number"] for r in pts["pruned"]] == [3]
    assert [r["number"] for r in pts["infeasible"]] == [4] and [r["number"] for r in pts["failed"]] == [6]


def test_pareto_points_for_another_pair_of_metrics():
    records = [rec(0, top1=80, macs=10, params=5.0), rec(1, top1=70, macs=20, params=1.0)]
    run = make_run(records)
    assert [r["category"] for r in records] == ["pareto", "dominated"]  # over the run's objectives
    pts = A.pareto_points(run, ["top1", "params"])
    assert sorted(r["number"] for r in pts["front"]) == [0, 1]  # both on the top1-vs-params front


def test_hypervolume_history_against_trials_and_time():
    records = [rec(0, top1=70, macs=20, end_s=50.0), rec(1, "PRUNED", "infeasible", macs=5, end_s=1.0),
               rec(2, top1=80, macs=30, end_s=10.0), rec(3, top1=75, macs=10, end_s=30.0),
               rec(4, "PRUNED", "pruned", top1=90, macs=1, end_s=40.0)]
    run = make_run(records)
    ideal, ref = A.reference_point([run])
    assert ideal == [80, 10] and ref == pytest.approx([69.0, 32.0])
    h = A.hv_history(run, ideal, ref)
    box = (80 - 69) * (32 - 10)
    assert h["trials"] == [1, 2, 3, 4]  # the infeasible candidate is not counted
    assert h["hv"][0] == pytest.approx((70 - 69) * (32 - 20) / box)
    final = hypervolume([[70, 20], [80, 30], [75, 10]], ["max", "min"], ref) / box
    assert h["hv"][-1] == pytest.approx(final) and h["hv"][-1] == h["hv"][-2]  # pruned adds nothing
    assert h["time_s"] == [10.0, 30.0, 40.0, 50.0]  # completion order
    assert h["hv_time"][0] == pytest.approx((80 - 69) * (32 - 30) / box) and h["hv_time"][-1] == pytest.approx(final)
    assert all(b >= a for a, b in zip(h["hv"], h["hv"][1:]))


# -- EDFs ---------------------------------------------------------------------------------------------------------


def test_edf_values_plain_and_weighted():
    grid = [0, 1, 2, 2.5, 3, 4]
    assert A.edf([1, 2, 2, 3], grid) == [0, 0.25, 0.75, 0.75, 1, 1]
    assert A.edf([1, 2, 3], grid, weights=[2, 1, 1]) == [0, 0.5, 0.75, 0.75, 1, 1]
    assert all(math.isnan(v) for v in A.edf([], grid))


def test_bootstrap_band_contains_the_edf():
    values = [((i * 37) % 23) / 2 for i in range(40)]
    grid = sorted(set(values))
    F = A.edf(values, grid)
    lo, hi = A.edf_band(values, grid, n_boot=300, seed=1)
    assert all(a <= f <= b for a, f, b in zip(lo, F, hi))
    assert any(b - a > 0.05 for a, b in zip(lo, hi))  # a band, not a line
    assert A.edf_band(values, grid, n_boot=300, seed=1) == (lo, hi)  # seeded


def test_complexity_weights_match_the_macs_distributions():
    small = [1e6, 1.2e6, 1.5e6, 2e6, 3e6, 5e6, 8e6, 9e6]  # mostly small models
    large = [1.1e6, 6e6, 7e6, 8.5e6, 9.5e6, 9.9e6, 2e7, 4e7]  # mostly large ones, some beyond the overlap
    (ws, wl), edges = A.complexity_weights([small, large], n_bins=4)
    assert sum(ws) == pytest.approx(1) and sum(wl) == pytest.approx(1)
    assert wl[-1] == 0 and wl[-2] == 0  # outside the MACs range both spaces cover

    def hist(macs, w):
        eps = 1e-9  # the edges went through log10 and back
        return [sum(wi for m, wi in zip(macs, w) if lo * (1 - eps) <= m <= hi * (1 + eps))
                for lo, hi in zip(edges, edges[1:])]

    assert hist(small, ws) == pytest.approx(hist(large, wl))
    unweighted = [hist(small, [1] * 8), hist(large, [1] * 8)]
    assert unweighted[0] != unweighted[1]  # they did differ before
    with pytest.raises(MixnasError, match="do not overlap"):
        A.complexity_weights([[1e6, 2e6], [5e6, 6e6]])


def test_design_space_edfs_normalised_reweights():
    def run(name, pairs):
        return make_run([rec(i, top1=t, macs=m) for i, (t, m) in enumerate(pairs)], name=name, space=name)
    a = run("a", [(90, 1e6), (88, 2e6), (85, 4e6), (80, 8e6)])
    b = run("b", [(70, 1e6), (75, 2e6), (78, 4e6), (79, 8e6), (60, 5e7)])
    raw = A.design_space_edfs([a, b], n_boot=50)
    assert list(raw["runs"]) == ["a", "b"] and raw["runs"]["b"]["n"] == 5
    assert raw["runs"]["a"]["F"][-1] == 1 and raw["runs"]["a"]["F"][0] == 0
    norm = A.design_space_edfs([a, b], normalize=True, n_boot=50)
    assert norm["runs"]["b"]["n"] == 4 and "reweighted" in norm["note"]  # the 5e7 model falls outside
    grid = norm["grid"]
    assert norm["runs"]["b"]["F"][grid.index(40.0)] == pytest.approx(1.0)  # error 40 (MACs 5e7) weighs nothing


# -- trends, parallel coordinates, importance ---------------------------------------------------------------------


def test_param_trends_and_parallel_dims():
    feats = [{"depth": 2, "family": "mixer"}, {"depth": 2, "family": "strip", "strip_width": 3},
             {"depth": 4, "family": "strip", "strip_width": 1}, {"depth": 4, "family": "mixer"}]
    records = [rec(i, top1=t, macs=10 + i, features=f) for i, (t, f) in enumerate(zip([70, 74, 80, 90], feats))]
    records.append(rec(9, "PRUNED", "pruned", top1=10, macs=1, features={"depth": 8, "family": "mixer"}))
    run = make_run(records, objectives=[("top1", "max")])
    trends = A.param_trends(run)
    assert list(trends) == ["depth", "family", "strip_width"]
    assert trends["depth"]["values"] == [2, 4] and trends["depth"]["mean"] == [72, 85]  # pruned left out
    assert trends["depth"]["min"] == [70, 80] and trends["depth"]["max"] == [74, 90] and trends["depth"]["n"] == [2, 2]
    assert trends["strip_width"]["values"] == [1, 3, "n/a"]
    par = A.parallel_dims(run)
    assert [d["label"] for d in par["dims"]] == ["depth", "family", "strip_width"]
    sw = par["dims"][2]
    assert sw["ticktext"] == ["1", "3", "n/a"] and sw["values"] == [2, 1, 0, 2]
    assert par["color"] == [70, 74, 80, 90]


def _trial(number, params, dists, value):
    return optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                     values=[value, 1.0], user_attrs={"digest": f"d{number}"})


def test_importance_only_over_trials_that_have_the_param(monkeypatch):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    dists = {"family": CategoricalDistribution(["a", "b"]), "depth": IntDistribution(1, 4),
             "a.width": IntDistribution(1, 8), "b.groups": IntDistribution(1, 4)}
    trials, records = [], []
    for i in range(16):
        fam = "a" if i % 2 else "b"
        params = {"family": fam, "depth": 1 + i % 4}
        params["a.width" if fam == "a" else "b.groups"] = 1 + (i * 5) % 8 if fam == "a" else 1 + i % 3
        value = 50 + 5 * params.get("a.width", 0) + 0.1 * params["depth"]
        t = _trial(i, params, dists, value)
        t.number = i
        trials.append(t)
        records.append(rec(i, top1=value, macs=1.0 + i))
    records.append(rec(16, "PRUNED", "pruned", top1=1, macs=1))
    run = make_run(records, trials)
    seen = []
    real = optuna_io.param_importances

    def spy(sub, directions, params, index, seed=0):
        seen.append(([t.number for t in sub], list(params)))
        assert all(p in t.params for t in sub for p in params)
        return real(sub, directions, params, index, seed=seed)

    monkeypatch.setattr(optuna_io, "param_importances", spy)
    groups = A.importances(run)
    assert sorted(g["subset"] for g in groups) == ["all trials", "family = a", "family = b"]
    by = {g["subset"]: g for g in groups}
    assert groups[0]["subset"] == "all trials" and [g["n"] for g in groups] == [16, 8, 8]
    assert all(g["of"] == 16 for g in groups)
    assert set(by["all trials"]["importances"]) == {"family", "depth"}  # no conditional parameter over all
    assert set(by["family = a"]["importances"]) == {"depth", "a.width"}  # family is constant in the subset
    assert set(by["family = b"]["importances"]) == {"depth", "b.groups"}
    assert max(by["family = a"]["importances"], key=by["family = a"]["importances"].get) == "a.width"
    assert sum(by["family = a"]["importances"].values()) == pytest.approx(1)
    assert [t.number for t in trials if t.params["family"] == "a"] in [n for n, _ in seen]


# -- architectures and loading -------------------------------------------------------------------------------------


def test_arch_features_and_summary():
    f = A.arch_features(tiny_mixer().to_dict())
    assert f["token_mixer"] == "mixer" and f["depth"] == 2 and f["stem_dim"] == 32 and f["channel_ratio"] == 2
    assert f["token_hidden_dim"] == 16
    p = tiny_pyramid().to_dict()
    fp = A.arch_features(p)
    assert fp["stages"] == 3 and fp["depth[2]"] == 1 and fp["width"] == 64
    s = A.arch_summary(p)
    assert "pyramid mixer" in s and "depths 1-1-1" in s and "widths 16-32-64" in s and "patch 4" in s


def test_load_run_errors_are_one_line(tmp_path):
    with pytest.raises(MixnasError, match="no such run folder"):
        A.load_run(tmp_path / "nope")
    with pytest.raises(MixnasError, match="not a search run folder"):
        A.load_run(tmp_path)
    (tmp_path / "search.yaml").write_text("settings: {}\n")
    with pytest.raises(MixnasError, match="a search.yaml written by mixnas search is a mapping"):
        A.load_run(tmp_path)
    (tmp_path / "search.yaml").write_text("settings: {}\nresolved: {study_name: x, objectives: [top1:max], "
                                          f"storage: 'sqlite:///{tmp_path}/missing.db'}}\n")
    with pytest.raises(MixnasError, match="missing.db: the study database is missing"):
        A.load_run(tmp_path)
