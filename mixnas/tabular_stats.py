"""Statistics of a mixnas-bench table and its card (``CARD.md``): size, cost, accuracy, seed noise, how well
each cheap fidelity ranks the architectures, and the table's true Pareto fronts.

Pure data functions (:func:`table_stats` returns plain dicts, also written as ``stats.json``) apart from
:func:`write_card`, which renders them as Markdown. Rank agreement is Spearman's rho (scipy) over the
architectures both sides have; ``n`` is given with every rho.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from mixnas.pareto import pareto_front
from mixnas.vocab import OutcomeStatus

CARD_FILE = "CARD.md"  # the card's name in the table's folder (see mixnas.tabular)


class Table(Protocol):
    """What these statistics read of a :class:`mixnas.tabular.Table`: its folder, build, records and look-ups.

    A protocol rather than an import, so this module sits below :mod:`mixnas.tabular` (whose
    ``Table.recommended`` uses :func:`fidelity_stats`) and the two do not import each other."""

    dir: Path
    build: dict[str, Any]
    settings: Any  # mixnas.tabular.BuildSettings
    records: list[dict[str, Any]]

    @property
    def epochs(self) -> int: ...

    def get(self, digest: str, setting: str = "table", seed: int = 0) -> dict[str, Any] | None: ...

    def completed(self, setting: str = "table") -> list[dict[str, Any]]: ...

    def arch_records(self) -> dict[str, dict[str, Any]]: ...

    def build_train(self) -> dict[str, Any]: ...

    def space(self) -> Any: ...


PROXIES = ("synflow", "naswot", "grad_norm", "snip")


def _final(rec: dict[str, Any], epoch: int | None = None) -> float | None:
    curve = rec.get("curve") or []
    if rec.get("status") != OutcomeStatus.COMPLETED or not curve:
        return None
    row = curve[-1] if epoch is None else (curve[epoch - 1] if epoch <= len(curve) else None)
    v = row.get("val_top1") if row else None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def spearman(xs: list[float | None], ys: list[float | None], interval: bool = False) -> dict[str, Any]:
    """Spearman's rho of the pairs where both values exist (``rho`` None below 3 pairs or no variance).

    ``interval``: also ``lo`` and ``hi``, a seeded percentile-bootstrap 90 % interval (2,000 resamples of
    the pairs). Against the long runs n is about 30, where rho's sampling error is about 0.15: the
    interval says which differences between fidelities the data can tell apart."""
    from scipy.stats import spearmanr

    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None
             and math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return {"rho": None, "n": len(pairs)}
    res = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])
    out = {"rho": round(float(res.statistic), 4), "n": len(pairs)}
    if interval:
        out.update(_bootstrap_rho(pairs))
    return out


def _bootstrap_rho(pairs: list[tuple[float, float]], resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Percentile-bootstrap 90 % interval of Spearman's rho (resamples without variance are dropped)."""
    import numpy as np
    from scipy.stats import rankdata

    data = np.asarray(pairs, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))
    rx, ry = rankdata(data[idx, 0], axis=1), rankdata(data[idx, 1], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    ok = den > 0
    rho = (rx * ry).sum(axis=1)[ok] / den[ok]
    lo, hi = np.percentile(rho, [5, 95])
    return {"lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def _family(rec: dict[str, Any]) -> str:
    return rec["arch"]["stages"][0]["token_mixer"]["name"]


def cost_stats(table: Table) -> dict[str, Any]:
    """Core-seconds per setting (one thread per job: a job's wall time is its core time) and in all."""
    out: dict[str, Any] = {}
    for setting in ("table", "noise", "long"):
        recs = [r for r in table.records if r["setting"] == setting]
        out[setting] = {"jobs": len(recs), "completed": sum(r.get("status") == OutcomeStatus.COMPLETED for r in recs),
                        "core_hours": round(sum(float(r.get("wall_time_s") or 0) for r in recs) / 3600, 3)}
    out["total_core_hours"] = round(sum(v["core_hours"] for v in out.values() if isinstance(v, dict)), 3)
    return out


def noise_stats(table: Table) -> dict[str, Any]:
    """Seed standard deviation (ddof 1) of validation top-1 per epoch over the noise architectures (their
    table record is seed 0), and how it compares with the spread between architectures."""
    by_digest: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in table.records:
        if r["setting"] == "noise" and r.get("status") == OutcomeStatus.COMPLETED:
            by_digest[r["digest"]].append(r)
    groups = []
    for digest, recs in by_digest.items():
        base = table.get(digest, "table", 0)
        if base is not None and base.get("status") == OutcomeStatus.COMPLETED:
            groups.append([base] + recs)
    epochs = table.epochs
    per_epoch = []
    for e in range(1, epochs + 1):
        stds = [statistics.stdev(v) for g in groups if len(v := [x for x in (_final(r, e) for r in g)
                                                                  if x is not None]) >= 2]
        per_epoch.append({"epoch": e, "archs": len(stds),
                          "median_std": round(statistics.median(stds), 3) if stds else None,
                          "mean_std": round(statistics.fmean(stds), 3) if stds else None})
    finals = [_final(r) for r in table.completed("table")]
    finals = [v for v in finals if v is not None]
    spread = statistics.stdev(finals) if len(finals) >= 2 else None
    seed_rho = None
    if groups:
        seed_rho = spearman([_final(g[0]) for g in groups], [_final(g[1]) for g in groups if len(g) > 1])
    last = per_epoch[-1]["median_std"] if per_epoch else None
    return {"archs": len(groups), "seeds": 1 + max((len(g) - 1 for g in groups), default=0),
            "per_epoch": per_epoch, "arch_spread_std": round(spread, 3) if spread else None,
            "noise_to_spread": round(last / spread, 4) if last and spread else None,
            "seed0_vs_seed1": seed_rho}


def fidelity_stats(table: Table) -> dict[str, Any]:
    """How well each cheap fidelity ranks the architectures, against the long runs' final accuracy (all the
    data, ``long_factor x`` the epochs) and against the table's own highest fidelity (every architecture)."""
    s = table.settings
    longs = {r["digest"]: r for r in table.completed("long")}
    digests = sorted(longs)
    tab = {d: table.get(d, "table", 0) for d in digests}
    ref = [_final(longs[d]) for d in digests]
    vs_long_table = [{"epoch": e, "fraction": s.fraction,
                      **spearman([_final(tab[d], e) if tab[d] else None for d in digests], ref, interval=True)}
                     for e in range(1, s.epochs + 1)]
    long_epochs = s.epochs * s.long_factor
    vs_long_long = [{"epoch": e, "fraction": 1.0,
                     **spearman([_final(longs[d], e) for d in digests], ref, interval=True)}
                    for e in range(1, long_epochs + 1)]
    all_tab = table.completed("table")
    table_final = [_final(r) for r in all_tab]
    within_table = [{"epoch": e, **spearman([_final(r, e) for r in all_tab], table_final)}
                    for e in range(1, s.epochs + 1)]
    proxies = {}
    for name in (*PROXIES, "params", "macs"):
        def value(r: dict[str, Any] | None, name: str = name) -> float | None:
            if r is None:
                return None
            if name in ("params", "macs"):
                return float(r[name])
            v = ((r.get("measured") or {}).get("proxies") or {}).get(name)
            return float(v) if isinstance(v, (int, float)) else None

        proxies[name] = {"vs_long": spearman([value(tab[d]) for d in digests], ref, interval=True),
                         "vs_table": spearman([value(r) for r in all_tab], table_final)}
    return {"long_archs": len(digests), "long_epochs": long_epochs, "table_vs_long": vs_long_table,
            "long_vs_long": vs_long_long, "within_table": within_table, "proxies": proxies,
            "recommendation": recommend(vs_long_table, within_table, s.epochs)}


def recommend(vs_long: list[dict[str, Any]], within: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """Grace period: the first epoch whose ranking agrees with the table's highest fidelity at rho >= 0.8
    (a rung that keeps the top 1/eta rarely drops a front member there). Maximum fidelity: the table's
    highest, unless a cheaper epoch ranks the long runs better beyond sampling error (its bootstrap
    interval's lower end above the highest fidelity's rho): with some 30 long runs, rho's error is about
    0.15, and a cheaper winner inside that margin is noise, not a reason to train less."""
    grace = next((r["epoch"] for r in within if r["rho"] is not None and r["rho"] >= 0.8), epochs)
    scored = [r for r in vs_long if r["rho"] is not None]
    top = next((r for r in scored if r["epoch"] == epochs), None)
    best = max(scored, key=lambda r: (r["rho"], -r["epoch"])) if scored else None
    chosen = top
    if best is not None and (top is None or (best.get("lo") is not None and best["lo"] > top["rho"])):
        chosen = best
    return {"grace": grace, "max_epochs": chosen["epoch"] if chosen else epochs,
            "max_epochs_rho": chosen["rho"] if chosen else None,
            "max_epochs_interval": [chosen.get("lo"), chosen.get("hi")] if chosen else None,
            "best_epoch": best["epoch"] if best else None, "best_rho": best["rho"] if best else None}


def front_stats(table: Table) -> dict[str, Any]:
    """The table's true Pareto fronts at its highest fidelity: top-1 vs MACs, and top-1 vs MACs vs latency."""
    recs = [r for r in table.completed("table") if _final(r) is not None]
    out = {}
    for name, keys, dirs in (("top1_macs", ("top1", "macs"), ["max", "min"]),
                             ("top1_macs_latency", ("top1", "macs", "latency_ms"), ["max", "min", "min"])):
        pts = [[_final(r), float(r["macs"]), float((r.get("measured") or {}).get("latency_ms") or math.inf)]
               [:len(keys)] for r in recs]
        idx = pareto_front(pts, dirs)
        out[name] = sorted(({"digest": recs[i]["digest"], "family": _family(recs[i]),
                             **{k: pts[i][j] for j, k in enumerate(keys)}} for i in idx), key=lambda p: p["macs"])
    return out


def accuracy_stats(table: Table) -> dict[str, Any]:
    fam: dict[str, list[float]] = defaultdict(list)
    for r in table.completed("table"):
        v = _final(r)
        if v is not None:
            fam[_family(r)].append(v)
    allv = [v for vs in fam.values() for v in vs]
    q = statistics.quantiles(allv, n=4) if len(allv) >= 2 else [None] * 3
    return {"archs": len(allv), "min": min(allv, default=None), "q1": q[0], "median": q[1], "q3": q[2],
            "max": max(allv, default=None),
            "families": {k: {"n": len(v), "median": round(statistics.median(v), 2), "max": round(max(v), 2)}
                         for k, v in sorted(fam.items())}}


def table_stats(table: Table) -> dict[str, Any]:
    return {"settings": table.settings.to_dict(), "architectures": len(table.arch_records()),
            "cost": cost_stats(table), "accuracy": accuracy_stats(table), "noise": noise_stats(table),
            "fidelity": fidelity_stats(table), "fronts": front_stats(table)}


# -- the card -------------------------------------------------------------------------------------------------


def _r(x: dict[str, Any]) -> str:
    if x.get("rho") is None:
        return "-"
    return f"{x['rho']:+.3f}" + (f" {_interval(x)}" if "lo" in x else "") + f" (n {x['n']})"


def _proxy_note(f: dict[str, Any]) -> str:
    """A sentence when a free measure (a zero-cost proxy, params or MACs) ranks the long runs better than the
    table's highest fidelity beyond sampling error: the table's front is then a proxy of the longest
    training's front, not the same thing."""
    top = next((r for r in f["table_vs_long"] if r["epoch"] == len(f["table_vs_long"])), None)
    better = {k: v["vs_long"] for k, v in f["proxies"].items()
              if top and top.get("rho") is not None and v["vs_long"].get("lo") is not None
              and v["vs_long"]["lo"] > top["rho"]}
    if not better:
        return ""
    name, r = max(better.items(), key=lambda kv: kv[1]["rho"])
    return (f" Yet {name} of the untrained network ranks the long runs better than the table's highest fidelity, "
            f"beyond sampling error ({r['rho']:+.3f} {_interval(r)} against {top['rho']:+.3f}): longer training on "
            "all the data favours larger models more than the table's short training does, so the table's fronts "
            "are a cheap stand-in for the longest training's, not the same fronts.")


def _interval(x: dict[str, Any]) -> str:
    return "-" if x.get("lo") is None else f"[{x['lo']:+.2f}, {x['hi']:+.2f}]"


def _f(v: Any, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def render_card(table: Table, st: dict[str, Any]) -> str:
    s, c, a, n, f = table.settings, st["cost"], st["accuracy"], st["noise"], st["fidelity"]
    planned = table.build.get("jobs", {})
    lines = [f"# mixnas-bench table: `{table.dir.name}`", "",
             f"Space `{Path(s.space).name}` ({st['architectures']} architectures recorded"
             + (f" of {table.build.get('architectures')}" if table.build.get("architectures") else "") + "), "
             f"dataset `{table.space().task.dataset}` at {table.space().task.image_size}x"
             f"{table.space().task.image_size}. Built with `mixnas bench build {s.space} --out {table.dir}` "
             "(run again to resume); this card: `mixnas bench card " + str(table.dir) + "`.", "",
             "## Settings", "",
             "| setting | what | jobs done / planned | core-hours |", "|---|---|---:|---:|",
             f"| table | every architecture, seed 0, {s.epochs} epochs on {s.fraction:.0%} of the training split | "
             f"{c['table']['completed']} / {planned.get('table', '?')} | {c['table']['core_hours']:.2f} |",
             f"| noise | {s.noise_archs} architectures at seeds 1..{s.noise_seeds - 1}, same recipe | "
             f"{c['noise']['completed']} / {planned.get('noise', '?')} | {c['noise']['core_hours']:.2f} |",
             f"| long | {s.long_archs} architectures, all the training data, {s.epochs * s.long_factor} epochs | "
             f"{c['long']['completed']} / {planned.get('long', '?')} | {c['long']['core_hours']:.2f} |",
             f"| all | | | **{c['total_core_hours']:.2f}** |", "",
             "Recipe of every job: `" + json.dumps(table.build_train(), separators=(", ", ": ")) + "` (epochs, "
             "fraction and seed per setting). One torch thread per job, two jobs at a time on a 2-core machine; "
             "each record's per-epoch train and eval times are what a simulated search replays.", "",
             "## Accuracy (validation top-1 at the table's highest fidelity)", "",
             f"{a['archs']} architectures: min {_f(a['min'])}, quartiles {_f(a['q1'])} / {_f(a['median'])} / "
             f"{_f(a['q3'])}, max {_f(a['max'])}.", "",
             "| token mixer | archs | median | best |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['n']} | {v['median']:.2f} | {v['max']:.2f} |" for k, v in a["families"].items()]
    lines += ["", "## Noise", "",
              f"{n['archs']} architectures at {n['seeds']} seeds. Seed standard deviation of top-1 (ddof 1):", "",
              "| epoch | " + " | ".join(str(r["epoch"]) for r in n["per_epoch"]) + " |",
              "|---|" + "---:|" * len(n["per_epoch"]),
              "| median std | " + " | ".join(_f(r["median_std"]) for r in n["per_epoch"]) + " |",
              "| mean std | " + " | ".join(_f(r["mean_std"]) for r in n["per_epoch"]) + " |", "",
              f"Spread between architectures (std of the final top-1): {_f(n['arch_spread_std'])}; seed noise / "
              f"spread {_f(n['noise_to_spread'], '.3f')}. Rank agreement of seed 0 and seed 1: "
              f"{_r(n['seed0_vs_seed1'] or {})}.", "",
              "## Fidelity: how well cheap training ranks the architectures", "",
              f"Against the final accuracy of the {f['long_archs']} long runs (all data, {f['long_epochs']} "
              "epochs), Spearman's rho:", "",
              "| epoch | " + " | ".join(str(r["epoch"]) for r in f["table_vs_long"]) + " |",
              "|---|" + "---:|" * len(f["table_vs_long"]),
              f"| {s.fraction:.0%} of the data (the table) | " + " | ".join(_f(r["rho"], "+.3f")
                                                                       for r in f["table_vs_long"]) + " |",
              "| 90 % interval | " + " | ".join(_interval(r) for r in f["table_vs_long"]) + " |",
              "| all the data (the long runs) | " + " | ".join(_f(r["rho"], "+.3f")
                                                            for r in f["long_vs_long"][:s.epochs]) + " |",
              "| 90 % interval | " + " | ".join(_interval(r) for r in f["long_vs_long"][:s.epochs]) + " |", "",
              "Intervals: seeded percentile bootstrap over the long runs (2,000 resamples); fidelities whose "
              "intervals overlap are not told apart by this many long runs.", ""]
    later = [r for r in f["long_vs_long"][s.epochs:] if r["epoch"] % s.epochs == 0 or r["epoch"] == f["long_epochs"]]
    if later:
        lines += ["Later epochs of the long runs: " + ", ".join(f"{r['epoch']}: {_f(r['rho'], '+.3f')} "
                                                                f"{_interval(r)}" for r in later) + ".", ""]
    lines += ["Within the table (every architecture), against its own highest fidelity: "
              + ", ".join(f"epoch {r['epoch']}: {_f(r['rho'], '+.3f')}" for r in f["within_table"]) + ".", "",
              "Zero-cost proxies and cost baselines (untrained network, one seeded batch), Spearman's rho:", "",
              "| proxy | vs the long runs | vs the table (all architectures) |", "|---|---:|---:|"]
    lines += [f"| {k} | {_r(v['vs_long'])} | {_r(v['vs_table'])} |" for k, v in f["proxies"].items()]
    rec = f["recommendation"]
    lines += ["", f"**Consequence for the search.** Grace period {rec['grace']} epoch(s): the first epoch whose "
              "ranking agrees with the table's highest fidelity at rho >= 0.8. Maximum fidelity "
              f"{rec['max_epochs']} epochs (rho {_f(rec['max_epochs_rho'], '+.3f')} against the long runs"
              + (f", 90 % interval {_interval({'lo': rec['max_epochs_interval'][0], 'hi': rec['max_epochs_interval'][1]})}"
                 if rec.get("max_epochs_interval") else "") + "): the table's highest fidelity, unless a cheaper "
              "epoch ranks the long runs better beyond sampling error (its interval's lower end above that rho)"
              + (f"; the highest rho, {rec['best_rho']:+.3f} at epoch {rec['best_epoch']}, is within it"
                 if rec.get("best_epoch") not in (None, rec["max_epochs"]) else "") + "." + _proxy_note(f), "",
              "## True Pareto fronts (at the table's highest fidelity)", ""]
    for name, pts in st["fronts"].items():
        lines += [f"**{name.replace('_', ' vs ')}**: {len(pts)} architectures", "",
                  "| digest | token mixer | top-1 | MACs |" + (" latency ms |" if "latency_ms" in (pts or [{}])[0] else ""),
                  "|---|---|---:|---:|" + ("---:|" if "latency_ms" in (pts or [{}])[0] else "")]
        lines += [f"| `{p['digest']}` | {p['family']} | {p['top1']:.2f} | {p['macs'] / 1e6:.3f}M |"
                  + (f" {p['latency_ms']:.3f} |" if "latency_ms" in p else "") for p in pts]
        lines.append("")
    return "\n".join(lines)


def write_card(table: Table, out: str | Path | None = None) -> Path:
    st = table_stats(table)
    path = Path(out) if out else table.dir / CARD_FILE
    path.write_text(render_card(table, st) + "\n")
    (path.parent / "stats.json").write_text(json.dumps(st, indent=1) + "\n")
    return path


__all__ = ["accuracy_stats", "cost_stats", "fidelity_stats", "front_stats", "noise_stats", "recommend",
           "render_card", "spearman", "table_stats", "write_card"]
