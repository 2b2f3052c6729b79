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
    agree = "same ordering" if tau == 1 else ("reversed ordering" if tau == -1 else "partly agrees" if tau > 0
                                               else "disagrees")
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
