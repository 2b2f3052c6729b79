"""Search efficiency on mixnas-bench: every strategy, many seeds, the same simulated compute budget.

    PYTHONPATH=. python -m bench.simulated_search                       # 20 seeds, writes BENCHMARKS.md
    PYTHONPATH=. python -m bench.simulated_search --seeds 5 --no-write  # a quick look, prints only

Each (strategy, seed) replays ``mixnas search`` on the table (:func:`mixnas.efficiency.replay`: the real
Search, Optuna sampler, de-duplication and MO-ASHA; training replaced by the table's records on a simulated
clock with ``--workers`` workers). Strategies: random search without early stopping (the baseline), and
random, TPE and NSGA-II each without and with MO-ASHA; the current default (sampler ``auto``, which is TPE
on this conditional space, with MO-ASHA) is marked. Every run gets the same budget: the simulated time in
which random search without early stopping trains ``--budget-trials`` architectures of average cost
(``budget-trials x mean full-training time / workers``).

Scoring (:mod:`mixnas.efficiency`): hypervolume of the architectures a run completed, normalised (top-1
linearly, MACs and latency on a log scale, each by the table's range; reference 1.1) and reported as a share
of the table's true front's hypervolume. For each strategy, median and interquartile range over seeds of:
the compute it needed to reach random search's final hypervolume (the median over random's seeds), as a
share of the budget; its final hypervolume at the budget; and the share of the true front's architectures
in its front. Two objective sets: top-1 vs MACs, and top-1 vs MACs vs latency.

Writes the section "Search efficiency on mixnas-bench" of BENCHMARKS.md and a figure (median and IQR band of
hypervolume against compute per strategy) to ``bench/results/simulated_search.html`` and ``.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Search efficiency on mixnas-bench"
DEFAULT_TABLE = ROOT / "bench" / "tables" / "fmnist32"
OBJECTIVE_SETS = {"2 objectives (top-1, MACs)": "top1:max,macs:min",
                  "3 objectives (top-1, MACs, latency)": "top1:max,macs:min,latency_ms:min"}


def strategies() -> list[Any]:
    from mixnas.efficiency import Strategy

    return [Strategy("random", "random", "none"), Strategy("random + MO-ASHA", "random", "moasha"),
            Strategy("TPE", "tpe", "none"), Strategy("TPE + MO-ASHA (default)", "auto", "moasha"),
            Strategy("NSGA-II", "nsga2", "none"), Strategy("NSGA-II + MO-ASHA", "nsga2", "moasha")]


def _one(job: tuple[str, str, Any, int, str, int, float, int]) -> tuple[str, int, list[tuple[float, str]], float, bool]:
    """One replay: (strategy, seed, completion events, CPU seconds, whether it ran out of trials early)."""
    table_dir, space, strategy, seed, objectives, workers, budget, trials = job
    from mixnas.efficiency import replay

    t0 = time.process_time()
    info: dict[str, Any] = {}
    events = replay(_table(table_dir), space, strategy, seed, objectives=objectives, workers=workers,
                    budget_s=budget, trials=trials, info=info)
    return strategy.name, seed, events, time.process_time() - t0, info["clock"] < budget


_TABLES: dict[str, Any] = {}


def _table(path: str) -> Any:
    from mixnas.tabular import Table

    if path not in _TABLES:
        _TABLES[path] = Table(path)
    return _TABLES[path]


def q(values: list[float]) -> tuple[float, float, float]:
    """Median and quartiles (inclusive method); infinities sort last."""
    v = sorted(values)
    if len(v) == 1:
        return v[0], v[0], v[0]
    qs = statistics.quantiles(v, n=4, method="inclusive")
    return qs[0], qs[1], qs[2]


def fmt(t: tuple[float, float, float], pct: bool = False) -> str:
    def one(x: float) -> str:
        if math.isinf(x):
            return "never"
        return f"{100 * x:.0f} %" if pct else f"{x:.3f}"

    return f"{one(t[1])} [{one(t[0])}, {one(t[2])}]"


def analyse(table: Any, metrics: list[str], directions: list[str], runs: dict[str, dict[int, list]],
            budget: float, workers: int, points_n: int = 60) -> dict[str, Any]:
    from mixnas.efficiency import (
        Scale,
        hv_curve,
        recovery,
        run_front,
        table_points,
        time_to_reach,
        true_front,
    )

    pts = table_points(table, metrics)
    scale = Scale.of(metrics, directions, list(pts.values()))
    truth = true_front(pts, directions)
    hv_true = scale.hv([pts[d] for d in truth])
    grid = [budget * i / points_n for i in range(1, points_n + 1)]
    base = "random"
    finals = {s: {seed: hv_curve(ev, pts, scale, [budget])[0] / hv_true for seed, ev in by.items()}
              for s, by in runs.items()}
    target = statistics.median(finals[base].values())
    rows, curves = {}, {}
    for s, by in runs.items():
        reach = [time_to_reach(ev, pts, scale, target * hv_true) / budget for ev in by.values()]
        rec = [recovery(run_front(ev, pts, directions, budget), truth) for ev in by.values()]
        rows[s] = {"reach": q(reach), "final": q(list(finals[s].values())), "recovery": q(rec),
                   "seeds": len(by), "reached": sum(math.isfinite(r) for r in reach)}
        per_seed = [[h / hv_true for h in hv_curve(ev, pts, scale, grid)] for ev in by.values()]
        curves[s] = {"x": [g * workers / 3600 for g in grid],
                     "median": [statistics.median(c[i] for c in per_seed) for i in range(len(grid))],
                     "q1": [q([c[i] for c in per_seed])[0] for i in range(len(grid))],
                     "q3": [q([c[i] for c in per_seed])[2] for i in range(len(grid))]}
    return {"rows": rows, "curves": curves, "target": target, "true_front": len(truth), "archs": len(pts)}


def figure(results: dict[str, dict[str, Any]], html: Path, png: Path | None) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(results)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    palette = ["#444444", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]
    for col, name in enumerate(names, start=1):
        for i, (s, c) in enumerate(results[name]["curves"].items()):
            color = palette[i % len(palette)]
            fig.add_trace(go.Scatter(x=c["x"] + c["x"][::-1], y=c["q3"] + c["q1"][::-1], fill="toself",
                                     fillcolor=color, opacity=0.15, line={"width": 0}, showlegend=False,
                                     hoverinfo="skip"), row=1, col=col)
            fig.add_trace(go.Scatter(x=c["x"], y=c["median"], name=s, line={"color": color, "width": 2},
                                     showlegend=col == 1, legendgroup=s), row=1, col=col)
        fig.update_xaxes(title_text="simulated compute (worker-hours)", row=1, col=col)
        fig.update_yaxes(title_text="hypervolume / true front's", row=1, col=col)
    fig.update_layout(width=1300, height=520, template="plotly_white", title="mixnas-bench: median and IQR over seeds")
    html.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(html), include_plotlyjs=True)
    if png is not None:
        from mixnas.browser import find_chromium, screenshot

        if find_chromium():
            screenshot(html, png, width=1320, height=560)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--space", help="space to search (default: the table's own)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="simulated workers (default 2, this machine's cores)")
    ap.add_argument("--budget-trials", type=int, default=100)
    ap.add_argument("--max-trials", type=int, default=500,
                    help="trial cap per run (re-used duplicates count, as in --trials; default 500)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from mixnas.simulate import epoch_seconds
    from mixnas.tabular import SPACE_FILE

    table = _table(args.table)
    space = args.space or str(table.dir / SPACE_FILE)
    full = [sum(epoch_seconds(r) for r in rec["curve"]) for rec in table.arch_records().values()
            if rec.get("status") == "completed"]
    budget = args.budget_trials * statistics.fmean(full) / args.workers
    t0 = time.time()
    results, cpu, capped = {}, {}, {}
    for label, objectives in OBJECTIVE_SETS.items():
        metrics = [o.split(":")[0] for o in objectives.split(",")]
        directions = [o.split(":")[1] for o in objectives.split(",")]
        jobs = [(args.table, space, s, seed, objectives, args.workers, budget, args.max_trials)
                for s in strategies() for seed in range(args.seeds)]
        runs: dict[str, dict[int, list]] = {}
        with ProcessPoolExecutor(args.jobs) as pool:
            for name, seed, events, secs, short in pool.map(_one, jobs):
                runs.setdefault(name, {})[seed] = events
                cpu.setdefault(name, []).append(secs)
                capped.setdefault(label, {}).setdefault(name, 0)
                capped[label][name] += short
                print(f"  {label}: {name} seed {seed}: {len(events)} completed, {secs:.1f} s", file=sys.stderr)
        results[label] = analyse(table, metrics, directions, runs, budget, args.workers)
    wall = time.time() - t0
    md = render(results, args, budget, wall, cpu, table, capped)
    print(md)
    if not args.no_write:
        from bench._report import write_section

        out = ROOT / "bench" / "results"
        figure(results, out / "simulated_search.html", out / "simulated_search.png")
        write_section(TITLE, md)
    return 0


def render(results: dict[str, Any], args: argparse.Namespace, budget: float, wall: float, cpu: dict[str, list],
           table: Any, capped: dict[str, dict[str, int]]) -> str:
    from bench._report import machine

    lines = [f"`PYTHONPATH=. python -m bench.simulated_search --seeds {args.seeds}` on the table "
             f"`{Path(args.table).name}` ({results[next(iter(results))]['archs']} architectures), "
             f"{args.workers} simulated workers, budget {budget * args.workers / 3600:.2f} worker-hours each "
             f"(random search's {args.budget_trials} average trainings), MO-ASHA at the CLI's grace 1 and eta 2, "
             f"{table.epochs} epochs maximum fidelity. The whole comparison ({len(strategies())} strategies x "
             f"{args.seeds} seeds x {len(results)} objective sets) took {wall / 60:.1f} min on {args.jobs} "
             f"processes; {machine()}.", "",
             "Cells: median [first quartile, third quartile] over seeds. *To reach random*: simulated compute needed "
             "to reach random search's median final hypervolume, as a share of the budget (random search itself "
             "needs about 100 %; *never*: not within the budget). *Final HV*: hypervolume at the budget, as a share "
             "of the table's true front's. *True front found*: share of the true front's architectures in the run's "
             "front.", ""]
    for label, res in results.items():
        lines += [f"**{label}**: true front of {res['true_front']} architectures; random search's median final "
                  f"hypervolume {res['target']:.3f}.", "",
                  "| strategy | to reach random | final HV | true front found | seeds reaching |",
                  "|---|---:|---:|---:|---:|"]
        for s, r in res["rows"].items():
            lines.append(f"| {s} | {fmt(r['reach'], pct=True)} | {fmt(r['final'])} | {fmt(r['recovery'], pct=True)} "
                         f"| {r['reached']}/{r['seeds']} |")
        short = {s: n for s, n in capped.get(label, {}).items() if n}
        if short:
            lines.append(f"Runs that used up their {args.max_trials} trials (re-used duplicates count) before the "
                         "budget: " + ", ".join(f"{s} {n}/{args.seeds}" for s, n in short.items()) + ".")
        lines.append("")
    lines += ["Mean CPU seconds per simulated search: " + ", ".join(
        f"{s} {statistics.fmean(v):.2f}" for s, v in cpu.items()) + ".", "",
        "![hypervolume against compute](bench/results/simulated_search.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
