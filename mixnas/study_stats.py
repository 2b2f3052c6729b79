"""The statistics of a study report, as pure functions, and its tables in Markdown, CSV and LaTeX.

Per level: mean, sample standard deviation (ddof=1), n and the 95 % confidence interval of the mean from the
t distribution; against the baseline level: the difference of means and Welch's t-test p-value (unequal
variances) across seeds; against the paper: Kendall's tau between the measured level means and the paper's
values over the levels that have both. Anything that cannot be computed (one seed, no paper value) is None
and renders as an em dash, never as a made-up number.

Missing values: a NaN (or infinite, or None) seed value is a seed without a value, not a number; it is left out
of every statistic here (``n`` counts the finite values), so one diverged seed cannot turn a level's mean and
interval into NaN. A level whose paper value is None or NaN has no paper value and is left out of Kendall's tau.

The power line is computed for the test the report runs, Welch's t-test (see :func:`t_test_power`), not from
the usual Student-t approximation, which at 2-4 seeds promises differences about half the size.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats


@dataclass(frozen=True)
class LevelStats:
    label: str
    n: int
    mean: float | None
    std: float | None  # ddof=1; None below 2 values
    ci_low: float | None  # 95 % CI of the mean (t distribution); None below 2 values
    ci_high: float | None
    delta: float | None = None  # mean - baseline mean
    p_value: float | None = None  # Welch's t-test against the baseline's values
    paper: float | None = None
    params: int | None = None
    macs: int | None = None
    baseline: bool = False
    paper_rank: float | None = None  # the level's place in the order the paper's text states (1 = worst)


def finite_values(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers: None, NaN and +-inf are missing seeds, not measurements."""
    xs = np.array(list(values), dtype=float)  # None becomes NaN
    return xs[np.isfinite(xs)].tolist()


def _missing(v: float | None) -> bool:
    return v is None or math.isnan(float(v))


def summarise(values: Sequence[float | None], confidence: float = 0.95) -> tuple[int, float | None, float | None,
                                                                                 float | None, float | None]:
    """(n, mean, std with ddof=1, CI low, CI high) of the finite values; std and CI are None for fewer than two.

    NaN, +-inf and None are missing seeds (a diverged or unfinished run), not values: they are dropped and not
    counted in ``n``, so ``[80, nan, 82]`` summarises as two seeds, and ``[nan]`` as no value at all
    (``(0, None, None, None, None)``) instead of a NaN mean that would render as a number."""
    xs = np.asarray(finite_values(values))
    n = len(xs)
    if n == 0:
        return 0, None, None, None, None
    mean = float(np.mean(xs))
    if n < 2:
        return n, mean, None, None, None
    std = float(np.std(xs, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch's t-test p-value over the finite values (as :func:`summarise`); None when either side
    has fewer than two values or both are constant."""
    a, b = finite_values(a), finite_values(b)
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        return None if a[0] != b[0] else 1.0
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def kendall_tau(measured: dict[str, float | None],
                paper: dict[str, float | None]) -> tuple[float | None, float | None, int]:
    """Kendall's tau (tau-b) and its p-value between measured and paper values on the shared levels, and how
    many. A level counts only when both values are there: a None or NaN on either side (a paper that gives no
    number for that level, a level without a finished seed) leaves it out of the comparison."""
    shared = [k for k in measured if k in paper and not _missing(measured[k]) and not _missing(paper[k])]
    if len(shared) < 2:
        return None, None, len(shared)
    res = stats.kendalltau([float(measured[k]) for k in shared], [float(paper[k]) for k in shared])
    tau, p = float(res.statistic), float(res.pvalue)
    return (None if math.isnan(tau) else tau), (None if math.isnan(p) else p), len(shared)


_NODES = 32  # Gauss-Jacobi nodes for the Welch df: the power agrees with adaptive quadrature to ~1e-12


def t_test_power(effect: float, n: int, alpha: float = 0.05, welch: bool = True) -> float:
    """Exact power of the two-sided two-sample t-test at level ``alpha`` for two groups of ``n`` seeds with equal
    variances and a true difference of ``effect`` standard deviations.

    With equal group sizes Welch's statistic is Student's, (mean_b - mean_a) / sqrt((s_a^2 + s_b^2) / n), and has
    the noncentral t distribution with 2n - 2 degrees of freedom and noncentrality ``effect * sqrt(n / 2)``.
    Student's test (``welch=False``) compares it with t_{1-alpha/2, 2n-2}. Welch's test compares it with
    t_{1-alpha/2, df_W}, where df_W = (n - 1) / (u^2 + (1 - u)^2) is computed from the sample variances
    (u = s_a^2 / (s_a^2 + s_b^2)): it is 2n - 2 only when the two sample variances happen to be equal, and
    as low as n - 1 otherwise. u ~ Beta((n-1)/2, (n-1)/2) is independent of the statistic (the proportion of
    a chi-square sum is independent of the sum), so the power is the noncentral-t tail probability averaged
    over u, integrated here by Gauss-Jacobi quadrature. At few seeds the difference matters: 80 % power needs
    10.4 sigma at 2 seeds under Welch's test against 5.65 under Student's."""
    if n < 2:
        raise ValueError("a two-sample t-test needs at least 2 values per group")
    df, nc = 2 * n - 2, abs(effect) * math.sqrt(n / 2)

    def tails(crit: Any) -> Any:
        # P(T < -crit) is below P(T < 0) = Phi(-nc); scipy answers NaN for it only where that is < 1e-14
        return stats.nct.sf(crit, df, nc) + np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0)

    if not welch:
        return float(tails(stats.t.ppf(1 - alpha / 2, df)))
    a = (n - 1) / 2
    x, w = special.roots_jacobi(_NODES, a - 1, a - 1)  # weight (1-x)^(a-1) (1+x)^(a-1): Beta(a, a) in u
    u = (1 + x) / 2
    crit = stats.t.ppf(1 - alpha / 2, (n - 1) / (u ** 2 + (1 - u) ** 2))
    return float(np.sum(w * tails(crit)) / np.sum(w))


def detectable_difference(std: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest difference of two level means (``n`` seeds each, common seed std ``std``) that the report's
    test, two-sided Welch's t-test at ``alpha``, detects with probability ``power``: the exact power of
    :func:`t_test_power` solved for the difference (Brent's method). Not the textbook approximation
    (t_{1-alpha/2} + t_power) * std * sqrt(2 / n), which is Student's test and at few seeds promises too much
    (5.36 sigma at 2 seeds, where Welch's test needs 10.4). None below 2 seeds."""
    if n < 2 or std is None:
        return None
    if std == 0:
        return 0.0
    hi = 1.0
    while t_test_power(hi, n, alpha) < power:
        hi *= 2
    d = optimize.brentq(lambda e: t_test_power(e, n, alpha) - power, 0.0, hi, xtol=1e-10, rtol=1e-12)
    return float(d) * std


def seeds_needed(delta: float, std: float, alpha: float = 0.05, power: float = 0.8, limit: int = 1000) -> int | None:
    """The fewest seeds per level at which Welch's test (:func:`t_test_power`) detects ``|delta|`` with
    probability ``power``, i.e. :func:`detectable_difference` <= ``|delta|``; None if more than ``limit``.
    The power grows with n, so the smallest such n is found by bisection."""
    if delta == 0 or std is None:
        return None
    if std == 0:
        return 2
    effect = abs(delta) / std

    def enough(n: int) -> bool:
        return t_test_power(effect, n, alpha) >= power

    if not enough(limit):
        return None
    lo, hi = 1, limit  # enough(hi); lo is too few (or below 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid >= 2 and enough(mid):
            hi = mid
        else:
            lo = mid
    return hi


def power_line(values: dict[str, Sequence[float]], baseline: str) -> str | None:
    """What this run could separate with the report's test (two-sided Welch's t-test): the detectable difference
    at the pooled seed std, and the seeds it would take to separate the largest observed difference from the
    baseline. Missing seeds (NaN) are left out, as in :func:`summarise`."""
    values = {k: finite_values(xs) for k, xs in values.items()}
    groups = [xs for xs in values.values() if len(xs) >= 2]
    if not groups or len(values.get(baseline, [])) < 1:
        return None
    dof = sum(len(g) - 1 for g in groups)
    pooled = math.sqrt(sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups) / dof)
    n = min(len(g) for g in groups)
    base = float(np.mean(values[baseline]))
    deltas = {k: float(np.mean(xs)) - base for k, xs in values.items() if xs and k != baseline}
    line = (f"Power: at the pooled seed std {pooled:.2f} and {n} seeds per level, differences below "
            f"{detectable_difference(pooled, n):.2f} points are not reliably detected (Welch's t-test, 80 % power, "
            f"α 0.05)")
    if deltas:
        label, delta = max(deltas.items(), key=lambda kv: abs(kv[1]))
        need = seeds_needed(delta, pooled)
        line += (f"; separating the largest observed difference ({label}, {delta:+.2f}) would take "
                 + (f"about {need} seeds per level" if need else "more than 1000 seeds per level"))
    return line + "."


def level_table(values: dict[str, Sequence[float]], baseline: str, paper: dict[str, float] | None = None,
                cost: dict[str, tuple[int | None, int | None]] | None = None,
                ranks: dict[str, float] | None = None) -> list[LevelStats]:
    """One row per level (in the order of ``values``) with its summary, delta and p against ``baseline``."""
    base = list(values.get(baseline, []))
    _, base_mean, *_ = summarise(base)
    rows = []
    for label, xs in values.items():
        n, mean, std, lo, hi = summarise(xs)
        is_base = label == baseline
        delta = None if is_base or mean is None or base_mean is None else mean - base_mean
        p = None if is_base else welch_p(list(xs), base)
        params, macs = (cost or {}).get(label, (None, None))
        rows.append(LevelStats(label, n, mean, std, lo, hi, delta, p, (paper or {}).get(label), params, macs,
                               is_base, (ranks or {}).get(label)))
    return rows


# -- rendering -------------------------------------------------------------------------------------------------

HEADERS = ("level", "n", "mean", "std", "95% CI", "params", "MACs", "Δ vs baseline", "p (Welch)", "paper")


def _f(x: float | None, digits: int = 2, sign: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    return "—" if p is None else ("<0.001" if p < 1e-3 else f"{p:.3f}")


def _count(n: int | None) -> str:
    if n is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def _cells(r: LevelStats) -> list[str]:
    ci = "—" if r.ci_low is None else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"
    return [r.label + (" (baseline)" if r.baseline else ""), str(r.n), _f(r.mean), _f(r.std), ci,
            _count(r.params), _count(r.macs), "—" if r.baseline else _f(r.delta, sign=True), _p(r.p_value),
            _f(r.paper) if r.paper is not None or r.paper_rank is None else f"rank {r.paper_rank:g}"]


def order_line(ranks: dict[str, float]) -> str:
    """'a < b = c' from ranks (1 = worst; equal ranks print as '=')."""
    items = sorted(ranks.items(), key=lambda kv: kv[1])
    out = items[0][0]
    for (_, r0), (label, r1) in zip(items, items[1:]):
        out += f" {'=' if r1 == r0 else '<'} {label}"
    return out


def tau_line(tau: float | None, p: float | None, n: int) -> str:
    if tau is None:
        return f"Kendall τ vs the paper: — ({n} level(s) with both values; needs 2)"
    agree = ("same ordering" if tau == 1 else "reversed ordering" if tau == -1 else "partly agrees" if tau > 0
             else "no association" if tau == 0 else "mostly disagrees")
    return f"Kendall τ vs the paper: {tau:+.3f} (p {_p(p)}, {n} levels): {agree}"


def to_markdown(rows: Sequence[LevelStats], title: str = "", notes: Sequence[str] = ()) -> str:
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(HEADERS) + " |")
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEADERS))) + "|")
    out += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    out += [""] + [f"{n}  " for n in notes] if notes else []
    return "\n".join(out).rstrip() + "\n"


def to_csv(rows: Sequence[LevelStats], study: str = "") -> str:
    """Machine-readable: full precision, empty cells for what cannot be computed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["study", "level", "baseline", "n", "mean", "std", "ci95_low", "ci95_high", "params", "macs",
                "delta", "p_welch", "paper", "paper_rank"])

    def c(x: Any) -> Any:
        return "" if x is None else x

    for r in rows:
        w.writerow([study, r.label, int(r.baseline), r.n, c(r.mean), c(r.std), c(r.ci_low), c(r.ci_high),
                    c(r.params), c(r.macs), c(r.delta), c(r.p_value), c(r.paper), c(r.paper_rank)])
    return buf.getvalue()


def _tex(s: str) -> str:
    s = s.replace("\\", r"\textbackslash{}")
    for a in "&%_#$":
        s = s.replace(a, "\\" + a)
    return s.replace("—", "--").replace("Δ", r"$\Delta$").replace("τ", r"$\tau$")


def to_latex(rows: Sequence[LevelStats], caption: str = "", notes: Sequence[str] = ()) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``)."""
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    lines += [r"\begin{tabular}{l" + "r" * (len(HEADERS) - 1) + "}", r"\toprule",
              " & ".join(_tex(h) for h in HEADERS) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in _cells(r)) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\smallskip{\footnotesize " + _tex(n) + "}" for n in notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
