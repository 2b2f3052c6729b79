"""The strategy comparison on a table: the Syne Tune peer on the same clock, cached replays, the levers'
keep-count switch, quartiles with "never", and which strategy is the default."""

import math

import pytest

import bench.simulated_search as sim
from bench.synetune_peer import METHODS
from bench.synetune_peer import replay as st_replay
from mixnas.efficiency import Strategy
from mixnas.simulate import epoch_seconds
from mixnas.tabular import Table
from tests.tabular_helpers import write_table


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return Table(write_table(tmp_path_factory.mktemp("bench")))


@pytest.mark.parametrize("method", METHODS)
def test_synetune_methods_replay_on_the_table_clock(table, method):
    space = str(table.dir / "space.yaml")
    info = {}
    budget = 30.0
    events = st_replay(table, space, method, 0, objectives="top1:max,macs:min", workers=2, budget_s=budget,
                       info=info)
    records = table.arch_records()
    longest = max(sum(epoch_seconds(r) for r in rec["curve"]) for rec in records.values())
    assert events and info["trained"] >= len(events)
    assert len({d for _, d, _ in events}) == len(events)  # each architecture trained at most once
    for t, d, vals in events:
        assert t <= budget + longest
        assert list(vals) == [records[d]["curve"][-1]["val_top1"], records[d]["macs"]]
    again = st_replay(table, space, method, 0, objectives="top1:max,macs:min", workers=2, budget_s=budget)
    assert again == events  # seeded


def test_synetune_moasha_stops_trials_early(table):
    info = {}
    events = st_replay(table, str(table.dir / "space.yaml"), "moasha", 1, objectives="top1:max,macs:min",
                       workers=2, budget_s=200.0, info=info)
    assert info["trained"] > len(events)  # some trials were stopped at a rung


def test_replays_are_cached_and_the_keep_lever_is_restored(table, tmp_path, monkeypatch):
    import mixnas.moasha as moasha

    monkeypatch.setattr(sim, "CACHE", tmp_path / "replays.jsonl")
    space = str(table.dir / "space.yaml")
    base = Strategy("tpe", "tpe", "moasha")
    floor = Strategy("tpe floor", "tpe", "moasha", options=(("keep", "floor+1"),))
    todo = [(base, 0), (floor, 0), (Strategy("st", "synetune:morea", "none"), 0)]
    first = sim.run_strategies(str(table.dir), space, todo, "top1:max,macs:min", 2, 30.0, 1000, 1)
    assert moasha.keep_count(4, 2.0) == 2  # the lever's rule did not leak
    lines = (tmp_path / "replays.jsonl").read_text().splitlines()
    assert len(lines) == 3
    second = sim.run_strategies(str(table.dir), space, todo, "top1:max,macs:min", 2, 30.0, 1000, 1)
    assert second["runs"] == first["runs"]
    assert len((tmp_path / "replays.jsonl").read_text().splitlines()) == 3  # nothing replayed again


def test_quartiles_with_never():
    assert sim.q([1.0, 2.0, 3.0]) == (1.5, 2.0, 2.5)
    lo, mid, hi = sim.q([0.2, 0.4, math.inf, math.inf])
    assert lo == pytest.approx(0.35) and mid == math.inf and hi == math.inf
    assert sim.fmt(sim.q([0.2, 0.4, math.inf, math.inf]), pct=True) == "never [35 %, never]"


def test_exactly_one_strategy_is_the_default():
    names = [s.name for s in sim.strategies()]
    assert sum(n.endswith("(default)") for n in names) == 1
    assert len(set(names)) == len(names)
    assert any(n.startswith("Syne Tune") for n in names) and any(n.startswith("NSGA-III") for n in names)


def test_synetune_priority_is_a_rank_not_an_order():
    """Syne Tune 0.16.0's NonDominatedPriority returns the items' order where its callers expect ranks;
    the peer hands them ranks (if an upgrade fixes it, this test fails and the work-around must go)."""
    import numpy as np
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    from bench.synetune_peer import ranked_priority

    x = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.95, 0.95], [0.2, 0.2]])  # item 3 is dominated by all
    assert list(NonDominatedPriority(dim=0)(x)) == [1, 0, 4, 2, 3]  # the order (what 0.16.0 returns)
    ranks = list(ranked_priority()(x))
    assert ranks == [1, 0, 3, 4, 2] and ranks[3] == max(ranks)  # the dominated item ranks last


def test_final_hypervolumes_are_compared_with_the_default():
    assert sim.versus([0.90, 0.91, 0.92, 0.93, 0.94], [0.97, 0.98, 0.99, 0.975, 0.985]) < 0.05
    assert sim.versus([0.95, 0.96, 0.97, 0.98], [0.955, 0.965, 0.975, 0.985]) > 0.5
    assert math.isnan(sim.versus([0.9, 0.8], [0.7, 0.6, 0.5]))



def test_verdict_reads_the_targets_off_the_rows():
    def row(reach, final, p=math.nan, seeds=20):
        return {"reach": (0, reach, 0), "final": (0, final, 0), "p_vs_default": p, "seeds": seeds}

    res = {"rows": {"random": row(1.0, 0.94, 1e-6), "TPE (default)": row(0.26, 0.994),
                    "NSGA-III": row(0.31, 0.995, 0.13), "GP": row(0.2, 0.999, 0.01, seeds=2)}}
    text = sim.verdict(res)
    assert "26 % of the budget (met" in text and "NSGA-III" in text and "not significant" in text  # GP: too few seeds
    res["rows"]["TPE (default)"] = row(0.4, 0.996)
    text = sim.verdict(res)
    assert "(not met" in text and text.endswith("(met).")
