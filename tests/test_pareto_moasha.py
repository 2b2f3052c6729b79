"""Pure Pareto / hypervolume logic and MO-ASHA promotion on hand-made rung data (no Ray)."""

from __future__ import annotations

import math

import pytest

from mixnas.moasha import CONTINUE, MOASHA, STOP, promote, rung_levels
from mixnas.pareto import crowding_distance, hypervolume, non_dominated_sort, pareto_front, rank_order

MX = ("max", "min")  # top1 up, MACs down


def test_non_dominated_sort_and_front():
    pts = [(90, 10), (80, 5), (85, 20), (70, 30), (90, 10)]
    assert non_dominated_sort(pts, MX) == [[0, 1, 4], [2], [3]]
    assert pareto_front(pts, MX) == [0, 1, 4]
    assert pareto_front([(1.0, math.nan), (0.5, 1.0)], MX) == [1]


def test_crowding_distance_boundaries_infinite():
    d = crowding_distance([(0, 4), (1, 3), (2, 1), (4, 0)], ("min", "min"))
    assert d[0] == math.inf and d[3] == math.inf
    assert d[1] == pytest.approx(2 / 4 + 3 / 4) and d[2] == pytest.approx(3 / 4 + 3 / 4)


def test_rank_order_front_then_crowding():
    pts = [(0, 4), (1, 3), (2, 1), (4, 0), (3, 3)]
    order = rank_order(pts, ("min", "min"))
    assert order[:2] == [0, 3] and order[2:4] == [2, 1] and order[-1] == 4


def test_hypervolume_2d_and_3d():
    assert hypervolume([(1, 1)], ("min", "min"), (2, 2)) == 1
    assert hypervolume([(1, 0), (0, 1)], ("min", "min"), (2, 2)) == 3
    assert hypervolume([(90.0, 10.0)], MX, (0.0, 100.0)) == pytest.approx(90 * 90)
    assert hypervolume([(3, 3)], ("min", "min"), (2, 2)) == 0  # beyond the reference
    assert hypervolume([(1, 1, 1)], ("min",) * 3, (2, 2, 2)) == 1
    assert hypervolume([(0, 1, 1), (1, 0, 1), (1, 1, 0)], ("min",) * 3, (2, 2, 2)) == pytest.approx(8 - 1 - 3)
    assert hypervolume([], MX, (0, 1)) == 0


def test_rung_levels():
    assert rung_levels(1, 3, 9) == [1, 3]
    assert rung_levels(1, 2, 8) == [1, 2, 4]
    assert rung_levels(1, 3, 1) == []


def test_promote_by_rank_then_crowding():
    rung = [(80, 10), (70, 5), (60, 50), (75, 8), (50, 60), (55, 55)]  # front: 0, 1, 3; then 5, 2, 4
    keep = [i for i in range(len(rung)) if promote(rung, i, MX, eta=3)]
    assert keep == [0, 1]  # 2 of 6; boundary points of the first front beat the crowded middle one (3)
    assert promote(rung, 3, MX, eta=2)  # 3 of 6 keeps the whole first front
    assert not promote(rung, 5, MX, eta=2)


def test_moasha_asynchronous_decisions():
    s = MOASHA(MX, max_t=9, grace=1, eta=3)
    assert s.levels == [1, 3]
    assert s.on_result("a", 1, (50.0, 10.0)) == CONTINUE  # first at the rung
    assert s.on_result("b", 1, (40.0, 20.0)) == STOP  # dominated, 1 of 2 kept
    assert s.on_result("c", 1, (60.0, 5.0)) == CONTINUE  # dominates a
    assert s.on_result("d", 1, (10.0, 1.0)) == CONTINUE  # non-dominated boundary point, keep 2 of 4
    assert s.on_result("a", 2, (55.0, 10.0)) == CONTINUE  # not a rung
    assert s.on_result("e", 1, (math.nan, 1.0)) == STOP  # NaN ranks last
    assert s.on_result("c", 9, (80.0, 5.0)) == STOP  # max_t reached


def test_moasha_single_objective_matches_asha_top_fraction():
    s = MOASHA(("max",), max_t=4, grace=1, eta=2)
    decisions = [s.on_result(str(i), 1, (v,)) for i, v in enumerate([5, 3, 7, 1, 6, 8])]
    assert decisions == [CONTINUE, STOP, CONTINUE, STOP, CONTINUE, CONTINUE]


def test_crowding_ties_go_from_the_most_accurate_end_outward():
    """At eta 3 (top-1 max, MACs min) a cheap early trial does not stop the two most accurate later ones."""
    s = MOASHA(MX, max_t=9, grace=1, eta=3)
    assert s.on_result("cheap", 1, (80.0, 10.0)) == CONTINUE
    assert s.on_result("accurate", 1, (95.0, 30.0)) == CONTINUE  # both ends infinite: the more accurate first
    assert s.on_result("most", 1, (96.0, 40.0)) == CONTINUE
    assert rank_order([(80.0, 10.0), (95.0, 30.0), (96.0, 40.0)], MX) == [2, 0, 1]


def test_an_incomplete_vector_ranks_after_every_complete_one():
    s = MOASHA(MX, max_t=8, grace=1, eta=2)
    for i, v in enumerate([(80, 10), (70, 20), (90, 5), (85, 3), (60, 1), (88, 4), (75, 2)]):
        s.on_result(str(i), 1, v)
    assert s.on_result("none", 1, (None, 0.1)) == STOP  # its MACs are the best; its top-1 is missing
    assert s.on_result("nan", 1, (float("nan"), 0.05)) == STOP
    assert rank_order([(None, 0.1), (50, 9)], MX) == [1, 0]
    import numpy as np

    assert pareto_front([(np.float32("nan"), 1.0), (0.5, 2.0)], MX) == [1]  # a numpy NaN is missing too


def test_equal_values_tie_as_in_rays_asha():
    s = MOASHA(("max",), max_t=4, grace=1, eta=2)
    assert s.on_result("a", 1, (26.9,)) == CONTINUE
    assert s.on_result("b", 1, (26.9,)) == CONTINUE  # equal to the kept value: continues (Ray's ASHA does)
    assert s.on_result("c", 1, (20.0,)) == STOP
    assert not promote([(None,), (None,)], 1, ("max",), eta=2)  # missing values never tie their way in


def test_rung_levels_round_half_up():
    assert rung_levels(1, 2.5, 10) == [1, 3, 6]
    assert rung_levels(2, 1.5, 8) == [2, 3, 5, 7]  # 4.5 -> 5, 6.75 -> 7


# -- infinities keep their direction, NaNs of every type are missing, constant objectives carry no crowding -----


def test_an_infinity_is_best_or_worst_by_the_objectives_direction():
    inf = math.inf
    assert pareto_front([(inf, 10.0), (90.0, 10.0)], MX) == [0]  # +inf top-1 is the best top-1, not the worst
    assert pareto_front([(-inf, 10.0), (90.0, 10.0)], MX) == [1]  # -inf top-1 is the worst
    assert pareto_front([(90.0, -inf), (90.0, 10.0)], MX) == [0]  # -inf MACs: the cheapest
    assert pareto_front([(90.0, inf), (90.0, 10.0)], MX) == [1]
    assert rank_order([(90.0, 10.0), (inf, 10.0)], MX) == [1, 0]
    assert hypervolume([(inf, 10.0)], MX, (0.0, 100.0)) == inf
    assert hypervolume([(-inf, 10.0)], MX, (0.0, 100.0)) == 0.0
    assert hypervolume([(90.0, -inf), (inf, 5.0)], MX, (0.0, 100.0)) == inf  # never NaN (inf - inf)
    s = MOASHA(MX, max_t=9, grace=1, eta=3)
    assert s.on_result("a", 1, (80.0, 10.0)) == CONTINUE
    assert s.on_result("b", 1, (90.0, 10.0)) == CONTINUE
    assert s.on_result("inf", 1, (inf, 10.0)) == CONTINUE  # dominates both: it is kept


def test_every_float_type_of_nan_is_missing():
    import numpy as np

    from mixnas.pareto import is_missing

    for nan in (float("nan"), np.float32("nan"), np.float16("nan"), np.longdouble("nan"), np.array(np.nan),
                np.array(np.nan, dtype=np.float32), "nan"):
        assert is_missing(nan), repr(nan)
        assert pareto_front([(nan, 1.0), (0.5, 2.0)], MX) == [1], repr(nan)
        assert rank_order([(nan, 0.5), (0.5, 2.0)], MX) == [1, 0], repr(nan)
    assert not is_missing(np.float32(1.0)) and not is_missing(math.inf) and not is_missing("top1")


def test_a_nan_in_the_reference_point_is_an_error_not_an_infinite_volume():
    import numpy as np

    for ref in ((math.nan, 100.0), (0.0, np.float32("nan")), (None, 100.0)):
        with pytest.raises(ValueError, match="reference"):
            hypervolume([(90.0, 10.0)], MX, ref)
    with pytest.raises(ValueError, match="reference"):
        hypervolume([(90.0, 10.0)], MX, (0.0,))


def test_a_constant_objective_adds_no_crowding():
    # the second objective is the same everywhere: the first alone decides, whatever the points' index order
    assert crowding_distance([(2, 5), (1, 5), (3, 5)], ("min", "min")) == [1.0, math.inf, math.inf]
    assert crowding_distance([(1, 1), (1, 1)], ("min", "min")) == [0.0, 0.0]
    assert crowding_distance([(7, 7)], ("min", "min")) == [0.0]
    assert crowding_distance([(0, 5), (math.inf, 5), (2, 5)], ("min", "min")) == [math.inf, math.inf, 0.0]
    # (top-1, MACs, latency) with equal latency: the crowded middle of the front (index 2) ranks last, and at
    # 2 kept of 3 it stops; before, the constant latency gave it +inf for being last by index
    rung = [(90.0, 10.0, 1.0), (80.0, 5.0, 1.0), (85.0, 7.0, 1.0)]
    dirs = ("max", "min", "min")
    assert rank_order(rung, dirs) == [0, 1, 2]
    assert [promote(rung, i, dirs, eta=1.5) for i in range(3)] == [True, True, False]


def _optuna_loss(points, directions):
    import numpy as np
    from optuna.study import StudyDirection
    from optuna.study._multi_objective import _normalize_value

    sd = [StudyDirection.MAXIMIZE if d == "max" else StudyDirection.MINIMIZE for d in directions]
    return np.array([[_normalize_value(float(v), d) for v, d in zip(p, sd)] for p in points], dtype=float)


@pytest.mark.parametrize("m", [2, 3])
def test_front_and_hypervolume_agree_with_optuna_on_random_points_with_infinities_and_nans(m):
    import numpy as np
    from optuna._hypervolume import compute_hypervolume
    from optuna.study._multi_objective import _is_pareto_front

    from mixnas.pareto import is_missing

    rng = np.random.default_rng(2026 + m)
    specials = [math.inf, -math.inf, math.nan, np.float32("nan")]
    for _ in range(300):
        n = int(rng.integers(1, 12))
        directions = tuple(str(d) for d in rng.choice(["min", "max"], size=m))
        points = [[float(rng.integers(0, 5)) for _ in range(m)] for _ in range(n)]  # small grid: many ties
        for _ in range(int(rng.integers(0, 4))):
            points[int(rng.integers(n))][int(rng.integers(m))] = specials[int(rng.integers(len(specials)))]
        complete = [i for i, p in enumerate(points) if not any(is_missing(v) for v in p)]
        # the front: Optuna over the complete points (it never holds a NaN value)
        expected = []
        if complete:
            on = _is_pareto_front(_optuna_loss([points[i] for i in complete], directions), False)
            expected = [i for i, keep in zip(complete, on) if keep]
        assert pareto_front(points, directions) == expected, (points, directions)
        # the hypervolume against a finite reference (given in the objectives' own units)
        reference = [float(rng.integers(-1, 6)) for _ in range(m)]
        ref = _optuna_loss([reference], directions)[0]
        loss = _optuna_loss([points[i] for i in complete], directions).reshape(-1, m)
        loss = loss[(loss < ref).all(axis=1)]
        with np.errstate(invalid="ignore"):  # Optuna's own inf - inf, which it reads as an infinite volume
            want = float(compute_hypervolume(loss, ref)) if len(loss) else 0.0
        got = hypervolume(points, directions, reference)
        assert got == pytest.approx(want), (points, directions, reference)


def _optuna_public_hypervolume(points, directions, reference):
    """Optuna's hypervolume through its public entry point: the last value of ``plot_hypervolume_history`` over
    a study holding ``points`` as COMPLETE trials (Optuna turns the maximised objectives round itself). The
    function is public but marked experimental; its warning is not what this test is about."""
    import warnings

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for d in directions])
    dist = {"x": FloatDistribution(0.0, 1.0)}
    study.add_trials([create_trial(params={"x": 0.5}, distributions=dist, values=list(p)) for p in points])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        figure = optuna.visualization.plot_hypervolume_history(study, list(reference))
    return float(figure.data[0].y[-1])


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_agrees_with_optunas_on_random_fronts_with_mixed_directions(m):
    """Random continuous point sets in 2 and 3 objectives, each objective maximised or minimised at random,
    against a reference behind all the points or inside the cloud (points beyond it add nothing): the own
    hypervolume equals Optuna's, through its public ``plot_hypervolume_history`` and through the exact WFG
    routine behind it (``optuna._hypervolume.compute_hypervolume``: private, so imported here, in the test
    only)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(16 + m)
    for _ in range(60):
        n = int(rng.integers(1, 16))
        directions = tuple(str(d) for d in rng.choice(["min", "max"], size=m))
        points = rng.uniform(0.0, 10.0, size=(n, m))
        if rng.random() < 0.5:  # behind every point
            reference = [(-1.0 if d == "max" else 11.0) for d in directions]
        else:  # inside the cloud: some points lie beyond it
            reference = [float(v) for v in rng.uniform(3.0, 7.0, size=m)]
        got = hypervolume(points.tolist(), directions, reference)
        sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
        loss, ref = points * sign, np.array(reference) * sign
        loss = loss[(loss < ref).all(axis=1)]
        exact = float(compute_hypervolume(loss, ref)) if len(loss) else 0.0
        assert got == pytest.approx(exact, rel=1e-12, abs=1e-12), (points, directions, reference)
        assert got == pytest.approx(_optuna_public_hypervolume(points.tolist(), directions, reference),
                                    rel=1e-9, abs=1e-9), (points, directions, reference)
        assert got > 0 or not len(loss)
