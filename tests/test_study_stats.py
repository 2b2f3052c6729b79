"""The study statistics on hand-made numbers with known answers, and the three table formats."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from mixnas.study_stats import (
    kendall_tau,
    level_table,
    summarise,
    tau_line,
    to_csv,
    to_latex,
    to_markdown,
    welch_p,
)


def test_summary_mean_std_and_t_interval():
    n, mean, std, lo, hi = summarise([1, 2, 3, 4, 5])
    assert (n, mean) == (5, 3.0)
    assert std == pytest.approx(math.sqrt(2.5))  # ddof=1
    # t(0.975, df=4) = 2.776445105 (tables); half-width = t * s / sqrt(n)
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert (lo, hi) == (pytest.approx(3 - half), pytest.approx(3 + half))
    assert summarise([7.0]) == (1, 7.0, None, None, None)
    assert summarise([]) == (0, None, None, None, None)
    # two values: t(0.975, 1) = 12.7062047
    _, _, s2, lo2, _ = summarise([1.0, 3.0])
    assert s2 == pytest.approx(math.sqrt(2)) and lo2 == pytest.approx(2 - 12.7062047 * math.sqrt(2) / math.sqrt(2))


def test_welch_against_the_formula():
    a, b = [1, 2, 3, 4, 5], [2, 4, 6, 8, 10]
    # var 2.5 and 10, n 5 each: se = sqrt(0.5 + 2) ; t = -3 / se ; Welch-Satterthwaite df = 2.5^2 / (0.5^2/4 + 2^2/4)
    t = -3 / math.sqrt(2.5)
    df = 2.5 ** 2 / (0.5 ** 2 / 4 + 2 ** 2 / 4)
    from scipy import stats
    assert welch_p(a, b) == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert 0.10 < welch_p(a, b) < 0.12  # ≈ 0.1075
    assert welch_p([1.0], b) is None  # one seed: no test
    assert welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p([1.0, 1.0], [2.0, 2.0]) is None  # zero variance on both sides: undefined, not invented


def test_kendall_tau_on_shared_levels():
    assert kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 30, "c": 20})[0] == pytest.approx(1 / 3)
    assert kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3})[0] == pytest.approx(1.0)
    assert kendall_tau({"a": 1, "b": 2, "c": 3}, {"c": 1, "b": 2})[0] == pytest.approx(-1.0)  # 2 shared levels
    assert kendall_tau({"a": 1, "b": 2}, {"a": 5}) == (None, None, 1)
    assert "needs 2" in tau_line(None, None, 1) and "same ordering" in tau_line(1.0, 0.3, 3)


def test_level_table_and_renderers():
    values = {"w-1": [80.0, 81.0, 82.0], "w-3": [84.0, 85.0, 86.0], "w-5": [85.0]}
    rows = level_table(values, baseline="w-3", paper={"w-1": 77.0, "w-3": 79.0},
                       cost={"w-1": (1_000_000, 6_500_000), "w-3": (1_010_000, 6_600_000)})
    by = {r.label: r for r in rows}
    assert by["w-3"].baseline and by["w-3"].delta is None and by["w-3"].p_value is None
    assert by["w-1"].delta == pytest.approx(-4.0) and by["w-1"].p_value < 0.01
    assert by["w-5"].std is None and by["w-5"].p_value is None and by["w-5"].delta == pytest.approx(0.0)
    assert by["w-1"].paper == 77.0 and by["w-5"].paper is None

    md = to_markdown(rows, "Strip width", notes=[tau_line(1.0, 1.0, 2)])
    # CI: 81 ± t(0.975, 2) 4.3027 * 1 / sqrt(3) = ± 2.484; Welch: t = -4 / sqrt(2/3) = -4.899, df 4, p = 0.0080
    assert "| w-1 | 3 | 81.00 | 1.00 | [78.52, 83.48] | 1.00M | 6.50M | -4.00 | 0.008 | 77.00 |" in md
    assert "| w-3 (baseline) | 3 | 85.00 |" in md and "| w-5 | 1 | 85.00 | — | — | — | — | +0.00 | — | — |" in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows, "sw"))))
    assert parsed[0]["level"] == "w-1" and float(parsed[0]["mean"]) == pytest.approx(81.0)
    assert parsed[2]["std"] == "" and parsed[1]["baseline"] == "1"
    tex = to_latex(rows, "Strip width 5% \\& more", notes=[tau_line(1.0, 1.0, 2)])
    assert r"\begin{tabular}{lrrrrrrrrr}" in tex and r"w-3 (baseline) & 3 & 85.00" in tex
    assert r"95\% CI" in tex and r"$\Delta$ vs baseline" in tex and "$\\tau$" in tex and "—" not in tex


def test_seeds_needed_matches_the_textbook_two_sample_t_test_sample_sizes():
    from mixnas.study_stats import detectable_difference, seeds_needed

    # Cohen's table for alpha 0.05 (two-sided), power 0.8: d = 1.0 -> 17, 0.8 -> 26, 0.5 -> 64 per group
    assert [seeds_needed(d, 1.0) for d in (1.0, 0.8, 0.5)] == [17, 26, 64]
    assert seeds_needed(0.3, 0.6) == seeds_needed(0.5, 1.0)  # only the ratio matters
    assert detectable_difference(1.0, 17) <= 1.0 < detectable_difference(1.0, 16)
    assert detectable_difference(0.5, 1) is None and seeds_needed(0.0, 1.0) is None


def test_power_line_names_the_detectable_difference_and_the_seeds_to_separate():
    from mixnas.study_stats import power_line

    line = power_line({"a": [80.0, 81.0, 82.0], "b": [80.5, 81.5, 82.5]}, "a")
    assert "pooled seed std 1.00 and 3 seeds per level" in line and "(b, +0.50)" in line
    assert "about 64 seeds per level" in line


# -- the power line is Welch's test's, exactly; NaN seeds and missing paper values are missing ----------------


def test_detectable_difference_is_that_of_welchs_test_at_few_seeds():
    """The report's p-values come from Welch's t-test, so its power line must too. The old Student-t
    approximation (t_{.975} + t_{.8}) * sqrt(2 / n) promised 5.36 sigma at 2 seeds, 3.04 at 3 and 2.37 at 4."""
    from mixnas.study_stats import detectable_difference

    expected = {2: 10.392, 3: 3.507, 4: 2.514, 5: 2.084, 10: 1.332}
    for n, d in expected.items():
        assert detectable_difference(1.0, n) == pytest.approx(d, abs=1e-3)
    assert detectable_difference(0.5, 3) == pytest.approx(0.5 * detectable_difference(1.0, 3))  # scales with the std
    assert detectable_difference(0.0, 3) == 0.0


def test_welch_power_against_simulating_scipys_welch_test():
    """Independent of the quadrature: draw many two-group experiments at the detectable difference and count how
    often scipy's Welch's test rejects; it must be 80 % (the Student-t figures reject far less often)."""
    from scipy import stats

    from mixnas.study_stats import detectable_difference

    rng = np.random.default_rng(15)
    m = 200_000
    for n in (2, 3, 4, 5):
        d = detectable_difference(1.0, n)
        a, b = rng.standard_normal((m, n)), rng.standard_normal((m, n)) + d
        rejected = float((stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean())
        assert rejected == pytest.approx(0.80, abs=0.004), n  # 4 binomial standard errors
    b = rng.standard_normal((m, 2)) + 5.36  # the old promise at 2 seeds: detected about half the time
    assert float((stats.ttest_ind(rng.standard_normal((m, 2)), b, axis=1, equal_var=False).pvalue < 0.05).mean()) < 0.5


def test_t_test_power_against_statsmodels():
    """statsmodels' TTestIndPower is the pooled (Student) test with 2n - 2 degrees of freedom: ``welch=False``
    must match it to the last digits; Welch's power is never above it (its critical value uses df <= 2n - 2)
    and meets it as n grows."""
    from statsmodels.stats.power import TTestIndPower

    from mixnas.study_stats import detectable_difference, t_test_power

    sm = TTestIndPower()
    for n in (2, 3, 5, 8, 17, 40, 200):
        for nc in (0.5, 1.5, 3.0, 4.5):  # noncentralities from 5 % to 99 % power (statsmodels: NaN far beyond)
            d = nc / math.sqrt(n / 2)
            student = float(sm.power(effect_size=d, nobs1=n, alpha=0.05, ratio=1.0, alternative="two-sided"))
            assert t_test_power(d, n, welch=False) == pytest.approx(student, abs=1e-9)
            assert t_test_power(d, n) <= student + 1e-12
        d_student = float(sm.solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=1.0, alternative="two-sided"))
        d_welch = detectable_difference(1.0, n)
        assert d_welch >= d_student
        assert t_test_power(d_welch, n) == pytest.approx(0.8, abs=1e-8)
    assert detectable_difference(1.0, 200) == pytest.approx(
        sm.solve_power(nobs1=200, alpha=0.05, power=0.8, ratio=1.0), rel=1e-3)


def test_seeds_needed_against_a_brute_force_loop():
    from mixnas.study_stats import seeds_needed, t_test_power

    def brute(effect: float) -> int:
        n = 2
        while t_test_power(effect, n) < 0.8:
            n += 1
        return n

    for effect in (12.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.7, 1.5, 1.3, 1.2, 1.1, 0.9, 0.6, 0.35):
        assert seeds_needed(effect, 1.0) == brute(effect), effect
    # where the Student-t approximation was one short
    assert [seeds_needed(d, 1.0) for d in (6.0, 2.5, 1.2)] == [3, 5, 13]
    assert seeds_needed(0.05, 1.0) is None  # about 6,300 seeds: beyond the limit
    assert seeds_needed(1.0, 0.0) == 2


def test_power_line_reads_welchs_numbers():
    from mixnas.study_stats import power_line

    line = power_line({"a": [80.0, 81.0, 82.0], "b": [80.5, 81.5, 82.5], "c": [math.nan, 83.0, 84.0, 85.0]}, "a")
    # pooled std 1.00, 3 seeds (the NaN is a missing seed, not a value); Welch at 3 seeds: 3.51 sigma
    assert "pooled seed std 1.00 and 3 seeds per level, differences below 3.51 points" in line
    assert "Welch's t-test" in line and "(c, +3.00)" in line and "about 4 seeds per level" in line


def test_a_nan_seed_is_a_missing_seed():
    """A diverged seed reports NaN: it must not turn the level's mean into a NaN that renders as a number."""
    assert summarise([80.0, math.nan, 82.0]) == summarise([80.0, 82.0])
    assert summarise([80.0, math.nan, 82.0])[0] == 2
    assert summarise([math.nan]) == (0, None, None, None, None)
    assert summarise([np.float32("nan"), 81.0]) == (1, 81.0, None, None, None)
    assert summarise([math.inf, None, 81.0]) == (1, 81.0, None, None, None)
    assert welch_p([1.0, 2.0, math.nan, 3.0], [2, 4, 6]) == welch_p([1.0, 2.0, 3.0], [2, 4, 6])
    rows = {r.label: r for r in level_table({"a": [80.0, 81.0, 82.0], "b": [math.nan]}, baseline="a")}
    assert rows["b"].n == 0 and rows["b"].mean is None and rows["b"].delta is None
    assert "| b | 0 | — | — | — |" in to_markdown(list(rows.values()))


def test_kendall_tau_leaves_out_levels_without_a_paper_value():
    measured = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    expected = kendall_tau({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 10, "b": 30, "c": 20})
    assert kendall_tau(measured, {"a": 10, "b": 30, "c": 20, "d": None}) == expected
    assert kendall_tau(measured, {"a": 10, "b": 30, "c": 20, "d": math.nan}) == expected
    # a measured NaN (a level without a finished seed) is left out too
    assert kendall_tau({"a": 1.0, "b": math.nan, "c": 3.0}, {"a": 1, "b": 2, "c": 3}) == \
        kendall_tau({"a": 1.0, "c": 3.0}, {"a": 1, "c": 3})
    assert kendall_tau({"a": 1.0, "b": 2.0}, {"a": None, "b": 5}) == (None, None, 1)
