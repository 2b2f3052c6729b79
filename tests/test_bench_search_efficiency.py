"""The search-efficiency benchmark's bookkeeping: hypervolume against compute, compute to reach a target."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from bench.search_efficiency import compute_to_reach, hv_at, hv_curve, reach_line


def _trial(i, state, top1, macs, wall, fidelity=2):
    status = {"COMPLETE": "completed", "PRUNED": "pruned"}[state]
    return SimpleNamespace(state=SimpleNamespace(name=state), number=i,
                           datetime_complete=datetime.datetime(2026, 1, 1, 0, 0, i),
                           user_attrs={"status": status, "wall_time_s": wall, "fidelity": fidelity, "macs": macs,
                                       "objectives": {"top1": top1, "macs": macs}})


def test_hv_curve_counts_compute_of_every_trained_trial_and_front_of_complete_ones():
    trials = [_trial(2, "PRUNED", 50.0, 2e6, 5.0, fidelity=1), _trial(1, "COMPLETE", 60.0, 4e6, 10.0),
              _trial(3, "COMPLETE", 70.0, 8e6, 20.0)]
    curve = hv_curve(trials, (10.0, 10e6), images=100)
    assert [r["seconds"] for r in curve] == [10.0, 15.0, 35.0]  # in order of completion
    assert curve[0]["macs"] == 2 * 100 * 3 * 4e6
    assert curve[0]["hv"] == (60 - 10) * (10e6 - 4e6) and curve[1]["hv"] == curve[0]["hv"]  # pruned adds none
    assert curve[2]["hv"] == (60 - 10) * (10e6 - 4e6) + (70 - 60) * (10e6 - 8e6) and curve[2]["front"] == 2
    dominated = hv_curve([*trials, _trial(4, "COMPLETE", 55.0, 9e6, 1.0)], (10.0, 10e6), images=100)
    assert dominated[-1]["front"] == 2 and dominated[-1]["hv"] == curve[2]["hv"]
    assert hv_at(curve, 14.0) == curve[0]["hv"] and hv_at(curve, 5.0) == 0.0
    assert compute_to_reach(curve, curve[2]["hv"]) == 35.0 and compute_to_reach(curve, 1e12) is None


def test_reach_line_verdict():
    assert "met" in reach_line("x", [0.2, 0.3]) and "not met" not in reach_line("x", [0.2, 0.3])
    assert "not met" in reach_line("x", [0.2, float("inf")])
    assert "not met" in reach_line("x", [0.5, 0.5])


def test_reach_line_takes_the_median_against_a_target():
    assert "not met" not in reach_line("x", [0.2, 0.9, 0.4], target=0.5)  # median 0.4
    assert "not met" in reach_line("x", [0.6, 0.9, 0.4], target=0.5)


def test_hv_curve_normalised_as_on_a_table():
    from mixnas.efficiency import Scale

    scale = Scale.of(["top1", "macs"], ["max", "min"], [[50.0, 1e5], [90.0, 1e7]])
    trials = [_trial(1, "COMPLETE", 90.0, 1e5, 10.0)]  # the ideal point of the table's range
    curve = hv_curve(trials, (10.0, 10e6), images=100, scale=scale, unit=scale.hv([[90.0, 1e5]]))
    assert curve[0]["hv"] == 1.0
