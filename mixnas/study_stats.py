"""The statistics of a study report, as pure functions, and its tables in Markdown, CSV and LaTeX.

Per level: mean, sample standard deviation (ddof=1), n and the 95 % confidence interval of the mean from the
t distribution; against the baseline level: the difference of means and Welch's t-test p-value (unequal
variances) across seeds; against the paper: Kendall's tau between the measured level means and the paper's
values over the levels that have both. Anything that cannot be computed (one seed, no paper value) is None
and renders as an em dash, never as a made-up number.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats


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


def summarise(values: Sequence[float], confidence: float = 0.95) -> tuple[int, float | None, float | None,
                                                                          float | None, float | None]:
    """(n, mean, std with ddof=1, CI low, CI high); std and CI are None for fewer than two values."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return 0, None, None, None, None
    mean = math.fsum(xs) / n
    if n < 2:
        return n, mean, None, None, None
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch's t-test p-value; None when either side has fewer than two values or both are constant."""
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        return None if a[0] != b[0] else 1.0
    p = float(stats.ttest_ind(list(a), list(b), equal_var=False).pvalue)
    return None if math.isnan(p) else p


def kendall_tau(measured: dict[str, float], paper: dict[str, float]) -> tuple[float | None, float | None, int]:
    """Kendall's tau (tau-b) and its p-value between measured and paper values on the shared levels, and how many."""
    shared = [k for k in measured if k in paper and measured[k] is not None]
    if len(shared) < 2:
        return None, None, len(shared)
    res = stats.kendalltau([measured[k] for k in shared], [paper[k] for k in shared])
    tau, p = float(res.statistic), float(res.pvalue)
    return (None if math.isnan(tau) else tau), (None if math.isnan(p) else p), len(shared)


def detectable_difference(std: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest difference of two level means (``n`` seeds each, common seed std ``std``) that a two-sided
    t-test at ``alpha`` detects with probability ``power``: (t_{1-alpha/2} + t_power) * std * sqrt(2 / n) with
    2n - 2 degrees of freedom (the usual approximation to the noncentral t). None below 2 seeds."""
    if n < 2 or std is None:
        return None
    df = 2 * n - 2
    return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * std * math.sqrt(2.0 / n)


def seeds_needed(delta: float, std: float, alpha: float = 0.05, power: float = 0.8, limit: int = 1000) -> int | None:
    """Seeds per level for :func:`detectable_difference` to reach ``|delta|``; None if more than ``limit``."""
    if delta == 0 or std is None:
        return None
    if std == 0:
        return 2
    for n in range(2, limit + 1):
        if detectable_difference(std, n, alpha, power) <= abs(delta):
            return n
    return None


def power_line(values: dict[str, Sequence[float]], baseline: str) -> str | None:
    """What this run could separate: the detectable difference at the pooled seed std, and the seeds it would
    take to separate the largest observed difference from the baseline."""
    groups = [list(map(float, xs)) for xs in values.values() if len(xs) >= 2]
    if not groups or len(values.get(baseline, [])) < 1:
        return None
    dof = sum(len(g) - 1 for g in groups)
    pooled = math.sqrt(math.fsum(math.fsum((x - math.fsum(g) / len(g)) ** 2 for x in g) for g in groups) / dof)
    n = min(len(g) for g in groups)
    base = math.fsum(values[baseline]) / len(values[baseline])
    deltas = {k: math.fsum(xs) / len(xs) - base for k, xs in values.items() if xs and k != baseline}
    line = (f"Power: at the pooled seed std {pooled:.2f} and {n} seeds per level, differences below "
            f"{detectable_difference(pooled, n):.2f} points are not reliably detected (80 % power, α 0.05)")
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
