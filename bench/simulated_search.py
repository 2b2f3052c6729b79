"""Search efficiency on mixnas-bench: every strategy, many seeds, the same simulated compute budget.

    PYTHONPATH=. python -m bench.simulated_search                       # 20 seeds, writes BENCHMARKS.md
    PYTHONPATH=. python -m bench.simulated_search --seeds 5 --no-write  # a quick look, prints only

Each (strategy, seed) replays ``mixnas search`` on the table (:func:`mixnas.efficiency.replay`: the real
Search, Optuna sampler, de-duplication and MO-ASHA; training replaced by the table's records on a simulated
clock with ``--workers`` workers). Strategies: random search without early stopping (the baseline); Optuna's
random, TPE, NSGA-II, NSGA-III and GP samplers, each without and with MO-ASHA; and Syne Tune's MO-ASHA and
MOREA through Syne Tune's own scheduler API (:mod:`bench.synetune_peer`, on the same clock). The default
(``mixnas search``'s sampler and scheduler) is marked. Every run gets the same budget: the simulated time in
which random search without early stopping trains ``--budget-trials`` architectures of average cost
(``budget-trials x mean full-training time / workers``). The GP sampler costs seconds of CPU per trial, so it
runs on ``--gp-seeds`` seeds only.

Scoring (:mod:`mixnas.efficiency`): what a run returns is the front of its completed trials by the values it
recorded; that is scored at the table's highest fidelity, as a hypervolume normalised (top-1 linearly, MACs
and latency on a log scale, each by the table's range; reference 1.1) and reported as a share of the table's
true front's hypervolume. For each strategy, median and interquartile range over seeds of:
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


GP_SEEDS = 5  # the GP sampler's default seed count: seconds of CPU per trial
SYNETUNE = "synetune:"  # a Strategy whose sampler starts so runs Syne Tune's method through bench.synetune_peer


CORE = {f"{s}{m}" for s in ("random", "TPE", "NSGA-II") for m in ("", " + MO-ASHA")}  # issue 13's comparison

KEEP_RULES = {"ceil": lambda n, eta: max(1, math.ceil(n / eta)),  # mixnas (asynchronous SHA's share)
              "floor+1": lambda n, eta: int(n // eta) + 1}  # Syne Tune's


def strategies(grace: int = 1) -> list[Any]:
    """Every method compared, early stopping at the same ``grace`` (``mixnas search --table``'s default:
    the table's recommendation); the default is the one named ``... (default)``."""
    from mixnas.efficiency import Strategy

    out = []
    for label, sampler in (("random", "random"), ("TPE", "tpe"), ("NSGA-II", "nsga2"), ("NSGA-III", "nsga3"),
                           ("GP", "gp")):
        out += [Strategy(label, sampler, "none"), Strategy(f"{label} + MO-ASHA", sampler, "moasha", grace=grace)]
    out += [Strategy("Syne Tune MO-ASHA", SYNETUNE + "moasha", "moasha", grace=grace),
            Strategy("Syne Tune MOREA", SYNETUNE + "morea", "none")]
    return [mark_default(s, grace) for s in out]


def mark_default(s: Any, grace: int) -> Any:
    """Name the strategy that is ``mixnas search --table``'s default (sampler, scheduler and settings)."""
    from dataclasses import replace

    from mixnas.cli.search import QUICKSTART
    from mixnas.search_driver import SearchSettings

    d = SearchSettings(space="", out="")
    sampler = "tpe" if d.sampler == "auto" else d.sampler  # auto is TPE on the conditional benchmark space
    same = (s.sampler == sampler and s.scheduler == d.scheduler and s.eta == QUICKSTART["eta"] and s.grace == grace
            and dict(s.options).get("sampler_options", {}) == d.sampler_options and not s.options)
    return replace(s, name=f"{s.name} (default)") if same else s


def _one(job: tuple[str, str, Any, int, str, int, float, int]) -> tuple[str, int, list, float, bool, int]:
    """One replay: (strategy, seed, completion events, CPU seconds, whether it ended before the budget,
    architectures trained)."""
    table_dir, space, strategy, seed, objectives, workers, budget, trials = job
    import torch

    torch.set_num_threads(1)  # the GP sampler's torch would take every core from the other replays
    t0 = time.process_time()
    info: dict[str, Any] = {}
    opts = dict(strategy.options)
    if "keep" in opts:  # a lever of bench/search_levers.py: MO-ASHA's keep count, for this replay only
        from dataclasses import replace

        import mixnas.moasha as moasha

        rule = opts.pop("keep")
        saved = moasha.keep_count
        moasha.keep_count = KEEP_RULES[rule]
        try:
            return _one((table_dir, space, replace(strategy, options=tuple(opts.items())), seed, objectives, workers,
                         budget, trials))
        finally:
            moasha.keep_count = saved
    if strategy.sampler.startswith(SYNETUNE):
        from bench.synetune_peer import replay as st_replay

        events = st_replay(_table(table_dir), space, strategy.sampler[len(SYNETUNE):], seed, objectives=objectives,
                           workers=workers, budget_s=budget, grace=strategy.grace, info=info)
    else:
        from mixnas.efficiency import replay

        events = replay(_table(table_dir), space, strategy, seed, objectives=objectives, workers=workers,
                        budget_s=budget, trials=trials, info=info)
    return strategy.name, seed, events, time.process_time() - t0, info["clock"] < budget, info["trained"]


_TABLES: dict[str, Any] = {}


def _table(path: str) -> Any:
    from mixnas.tabular import Table

    if path not in _TABLES:
        _TABLES[path] = Table(path)
    return _TABLES[path]


def q(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile (linear interpolation, as ``statistics.quantiles``'s
    inclusive method); an infinity ("never") sorts last, and a quantile next to one is infinite."""
    v = sorted(values)

    def at(p: float) -> float:
        x = p * (len(v) - 1)
        lo, frac = int(math.floor(x)), x - math.floor(x)
        if frac == 0:
            return v[lo]
        a, b = v[lo], v[lo + 1]
        return math.inf if math.isinf(b) else a + (b - a) * frac

    return at(0.25), at(0.5), at(0.75)


def fmt(t: tuple[float, float, float], pct: bool = False) -> str:
    def one(x: float) -> str:
        if math.isinf(x):
            return "never"
        return f"{100 * x:.0f} %" if pct else f"{x:.3f}"

    return f"{one(t[1])} [{one(t[0])}, {one(t[2])}]"


def analyse(table: Any, metrics: list[str], directions: list[str], runs: dict[str, dict[int, list]],
            budget: float, workers: int, trained: dict[str, list[int]] | None = None,
            points_n: int = 60) -> dict[str, Any]:
    from mixnas.efficiency import (
        Scale,
        hv_curve,
        recovery,
        returned,
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
        rec = [recovery(returned(ev, directions, budget), truth) for ev in by.values()]
        rows[s] = {"reach": q(reach), "final": q(list(finals[s].values())), "recovery": q(rec),
                   "seeds": len(by), "reached": sum(math.isfinite(r) for r in reach),
                   "trained": statistics.median((trained or {}).get(s) or [math.nan])}
        per_seed = [[h / hv_true for h in hv_curve(ev, pts, scale, grid)] for ev in by.values()]
        rows[s]["finals"] = list(finals[s].values())
        curves[s] = {"x": [g * workers / 3600 for g in grid],
                     "median": [statistics.median(c[i] for c in per_seed) for i in range(len(grid))],
                     "q1": [q([c[i] for c in per_seed])[0] for i in range(len(grid))],
                     "q3": [q([c[i] for c in per_seed])[2] for i in range(len(grid))]}
    default = next((s for s in rows if s.endswith("(default)")), None)
    for s, r in rows.items():
        r["p_vs_default"] = (versus(r["finals"], rows[default]["finals"]) if default and s != default
                             else math.nan)
    return {"rows": rows, "curves": curves, "target": target, "true_front": len(truth), "archs": len(pts)}


def verdict(res: dict[str, Any]) -> str:
    """The issue's targets, read off one objective set's rows: the default reaches random search's
    hypervolume within a third of the budget (median), and its final hypervolume is at least the best
    peer's (by median; with the Mann-Whitney p of the difference)."""
    rows = res["rows"]
    default = next((s for s in rows if s.endswith("(default)")), None)
    if default is None:
        return "No strategy is the default."
    d = rows[default]
    peers = {s: r for s, r in rows.items() if s != default and r["seeds"] >= 3}
    best = max(peers, key=lambda s: peers[s]["final"][1])
    reach, final, other = d["reach"][1], d["final"][1], peers[best]["final"][1]
    p = peers[best]["p_vs_default"]
    head = (f"*Targets*: the default reaches random search's hypervolume with {reach * 100:.0f} % of the budget "
            f"({'met' if reach <= 1 / 3 else 'not met'}: at most a third). Best peer by median final "
            f"hypervolume: {best}, {other:.3f} against the default's {final:.3f}")
    if final >= other:
        return head + " (met)."
    sig = "significant" if p < 0.05 else "not significant"
    return head + f", a difference {sig} at the 5 % level (Mann-Whitney p {p:.2g} over seeds)."


def versus(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U p-value of two strategies' final hypervolumes over their seeds (unpaired:
    seed k of one sampler has nothing in common with seed k of another); nan with fewer than 3 each."""
    from scipy.stats import mannwhitneyu

    if len(a) < 3 or len(b) < 3:
        return math.nan
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def figure(results: dict[str, dict[str, Any]], html: Path, png: Path | None) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(results)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    # one colour per method; dotted without early stopping, solid with MO-ASHA; the default drawn thick
    palette = {"random": "#555555", "TPE": "#d62728", "NSGA-II": "#1f77b4", "NSGA-III": "#17becf", "GP": "#2ca02c",
               "Syne Tune MO-ASHA": "#9467bd", "Syne Tune MOREA": "#ff7f0e"}
    for col, name in enumerate(names, start=1):
        for s, c in results[name]["curves"].items():
            base = s.split(" (")[0].removesuffix(" + MO-ASHA")
            color = palette.get(base, "#8c564b")
            default = "(default)" in s
            dash = "solid" if "MO-ASHA" in s or base.startswith("Syne Tune") else "dot"
            if base.startswith("Syne Tune"):
                dash = "dashdot"
            fig.add_trace(go.Scatter(x=c["x"] + c["x"][::-1], y=c["q3"] + c["q1"][::-1], fill="toself",
                                     fillcolor=color, opacity=0.18 if default else 0.06, line={"width": 0},
                                     showlegend=False, hoverinfo="skip"), row=1, col=col)
            fig.add_trace(go.Scatter(x=c["x"], y=c["median"], name=s,
                                     line={"color": color, "width": 4 if default else 1.8, "dash": dash},
                                     showlegend=col == 1, legendgroup=s), row=1, col=col)
        fig.update_xaxes(title_text="simulated compute (worker-hours)", row=1, col=col)
        fig.update_yaxes(title_text="hypervolume / true front's", range=[0.7, 1.005], row=1, col=col)
    fig.update_layout(width=1300, height=560, template="plotly_white",
                      title="mixnas-bench: median (line) and interquartile range (band) over seeds; dotted: no early "
                            "stopping, solid: with MO-ASHA")
    html.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(html), include_plotlyjs=True, config={"displayModeBar": False})
    if png is not None:
        from mixnas.browser import find_chromium, screenshot

        if find_chromium():
            screenshot(html, png, width=1320, height=600)


CACHE = ROOT / "bench" / "results" / "replays.jsonl"  # one line per finished replay (git-ignored)
# Bump when a change to the search, MO-ASHA, the simulator or a peer changes what a replay returns: cached
# replays of older versions are then not re-used.
REPLAY_VERSION = 1


def cache_key(table: Any, job: tuple) -> str:
    """What a replay's result depends on: the table, the strategy and its settings (mixnas's sampler
    defaults included), the seed, the budget and :data:`REPLAY_VERSION`."""
    import hashlib

    _, space, strategy, seed, objectives, workers, budget, trials = job
    h = hashlib.sha256(f"v{REPLAY_VERSION}".encode())
    if strategy.sampler.startswith(SYNETUNE):
        from bench.synetune_peer import VERSION

        h.update(f"synetune-v{VERSION}".encode())
    else:  # the sampler's effective settings: a change of mixnas's defaults is a different strategy
        from mixnas.optuna_io import sampler_defaults

        kind = "tpe" if strategy.sampler == "auto" else strategy.sampler
        h.update(repr(sorted(sampler_defaults(kind, True).items())).encode())
    h.update(_records_digest(table).encode())
    h.update(Path(space).read_bytes())
    h.update(repr((strategy, seed, objectives, workers, round(budget, 6), trials)).encode())
    return h.hexdigest()[:24]


_RECORDS: dict[str, str] = {}


def _records_digest(table: Any) -> str:
    """A digest of the records a replay reads (the ``table`` setting at seed 0): the long runs and noise
    seeds a build appends later do not change it."""
    import hashlib
    import json

    if str(table.file) not in _RECORDS:
        recs = table.arch_records()
        text = json.dumps([recs[d] for d in sorted(recs)], sort_keys=True, default=str)
        _RECORDS[str(table.file)] = hashlib.sha256(text.encode()).hexdigest()
    return _RECORDS[str(table.file)]


def load_cache() -> dict[str, dict[str, Any]]:
    import json

    out = {}
    if CACHE.is_file():
        for line in CACHE.read_text().splitlines():
            try:
                row = json.loads(line)
                out[row["key"]] = row
            except (ValueError, KeyError):
                continue  # a torn last line
    return out


def run_strategies(table_path: str, space: str, todo: list[tuple[Any, int]], objectives: str, workers: int,
                   budget: float, max_trials: int, jobs: int, label: str = "", cached_only: bool = False
                   ) -> dict[str, Any]:
    """Replay every (strategy, seed) of ``todo`` (in ``jobs`` processes), re-using finished replays from
    :data:`CACHE` and appending each new one to it as it ends (an interrupted comparison resumes);
    ``cached_only``: replay nothing, analyse what is cached."""
    import json

    table = _table(table_path)
    cache = load_cache()
    out: dict[str, Any] = {"runs": {}, "cpu": {}, "early": {}, "trained": {}}

    def take(name: str, seed: int, events: list, secs: float, early: bool, trained: int) -> None:
        out["runs"].setdefault(name, {})[seed] = [tuple([e[0], e[1], tuple(e[2])]) for e in events]
        out["cpu"].setdefault(name, []).append(secs)
        out["early"][name] = out["early"].get(name, 0) + int(early)
        out["trained"].setdefault(name, []).append(trained)

    pending = []
    for strategy, seed in todo:
        job = (table_path, space, strategy, seed, objectives, workers, budget, max_trials)
        key = cache_key(table, job)
        if key in cache:
            r = cache[key]
            take(strategy.name, seed, r["events"], r["cpu_s"], r["early"], r["trained"])
        elif not cached_only:
            pending.append((key, job))
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool, open(CACHE, "a") as fh:
        futures = {pool.submit(_one, job): (key, job) for key, job in pending}
        from concurrent.futures import as_completed

        for n, fut in enumerate(as_completed(futures), start=1):
            key, job = futures[fut]
            name, seed, events, secs, early, trained = fut.result()
            take(job[2].name, seed, events, secs, early, trained)
            fh.write(json.dumps({"key": key, "strategy": name, "seed": seed, "events": events, "cpu_s": secs,
                                 "early": early, "trained": trained}) + "\n")
            fh.flush()
            print(f"  [{n}/{len(pending)}] {label}: {name} seed {seed}: {trained} trained, {len(events)} completed, "
                  f"{secs:.1f} s CPU", file=sys.stderr, flush=True)
    return out


def budget_of(table: Any, budget_trials: int, workers: int) -> float:
    """Simulated seconds in which random search without early stopping trains ``budget_trials``
    architectures of average cost on ``workers`` workers."""
    from mixnas.simulate import epoch_seconds

    full = [sum(epoch_seconds(r) for r in rec["curve"]) for rec in table.arch_records().values()
            if rec.get("status") == "completed"]
    return budget_trials * statistics.fmean(full) / workers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--space", help="space to search (default: the table's own)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--gp-seeds", type=int, default=GP_SEEDS, help="seeds of the GP sampler (seconds of CPU per trial)")
    ap.add_argument("--gp-seeds-3", type=int, help="seeds of the GP sampler with 3 objectives (default: --gp-seeds; "
                    "about 8 CPU-minutes per replay)")
    ap.add_argument("--workers", type=int, default=2, help="simulated workers (default 2, this machine's cores)")
    ap.add_argument("--budget-trials", type=int, default=100)
    ap.add_argument("--max-trials", type=int, default=100_000,
                    help="cap on architectures trained per run (default: none in practice; the budget decides)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from mixnas.tabular import SPACE_FILE

    table = _table(args.table)
    space = args.space or str(table.dir / SPACE_FILE)
    budget = budget_of(table, args.budget_trials, args.workers)
    grace = table.recommended()["grace"]
    t0 = time.time()
    results, cpu, early = {}, {}, {}
    for label, objectives in OBJECTIVE_SETS.items():
        metrics = [o.split(":")[0] for o in objectives.split(",")]
        directions = [o.split(":")[1] for o in objectives.split(",")]
        # seed-major: an interrupted comparison (it resumes from the cache) has every strategy at some seeds
        gp_seeds = args.gp_seeds if len(metrics) < 3 or args.gp_seeds_3 is None else args.gp_seeds_3
        todo = [(s, seed) for seed in range(args.seeds) for s in strategies(grace)
                if s.sampler != "gp" or seed < gp_seeds]
        got = run_strategies(args.table, space, todo, objectives, args.workers, budget, args.max_trials, args.jobs,
                             label)
        for name, v in got["cpu"].items():
            cpu.setdefault(name, []).extend(v)
        early[label] = got["early"]
        results[label] = analyse(table, metrics, directions, got["runs"], budget, args.workers, got["trained"])
    wall = time.time() - t0
    md = render(results, args, budget, wall, cpu, table, early)
    print(md)
    if not args.no_write:
        from bench._report import write_section

        out = ROOT / "bench" / "results"
        figure(results, out / "simulated_search.html", out / "simulated_search.png")
        write_section(TITLE, md)
    return 0


def render(results: dict[str, Any], args: argparse.Namespace, budget: float, wall: float, cpu: dict[str, list],
           table: Any, early: dict[str, dict[str, int]]) -> str:
    import optuna

    from bench._report import machine
    from bench.synetune_peer import version

    first = results[next(iter(results))]
    gp = "" if args.gp_seeds == GP_SEEDS else f" --gp-seeds {args.gp_seeds}"
    gp += "" if args.gp_seeds_3 is None else f" --gp-seeds-3 {args.gp_seeds_3}"
    lines = [f"`PYTHONPATH=. python -m bench.simulated_search --seeds {args.seeds}{gp}` on the table "
             f"`{Path(args.table).name}` ({first['archs']} architectures), {args.workers} simulated workers, budget "
             f"{budget * args.workers / 3600:.2f} worker-hours per run (random search's {args.budget_trials} average "
             f"trainings), {table.epochs} epochs maximum fidelity; MO-ASHA at eta 2 and grace {table.recommended()['grace']} "
             "(`mixnas search --table`'s defaults: grace as the table's rank correlations recommend). "
             f"Optuna {optuna.__version__} (its samplers with mixnas's settings: `mixnas.optuna_io.make_sampler`), "
             f"Syne Tune {version()} (settings in `bench/synetune_peer.py`). {args.seeds} seeds per strategy, "
             f"{args.gp_seeds} for GP (seconds of CPU per trial)"
             + (f", {args.gp_seeds_3} with 3 objectives (about 8 CPU-minutes per replay there)"
                if args.gp_seeds_3 not in (None, args.gp_seeds) else "")
             + f". This run took {wall / 60:.1f} min "
             f"on {args.jobs} processes, re-using the replays cached in `bench/results/replays.jsonl` (the full cost "
             f"is below the tables); {machine()}.",
             "",
             "What a run returns is the front of its completed trials by the values it recorded, scored at the "
             "table's highest fidelity (8 epochs). Cells: median [first quartile, third quartile] over seeds. *To "
             "reach random*: simulated compute needed to reach random search's median final hypervolume, as a share "
             "of the budget (random search itself needs about 100 %; *never*: not within the budget). *Final HV*: "
             "hypervolume at the budget, as a share of the table's true front's; *vs default (p)*: two-sided "
             "Mann-Whitney U p-value of its final hypervolumes against the default's. *True front found*: share of the "
             "true front's architectures in what the run returns. *Trained*: architectures trained (median).", ""]
    for label, res in results.items():
        lines += [f"**{label}**: true front of {res['true_front']} architectures; random search's median final "
                  f"hypervolume {res['target']:.3f}.", "",
                  "| strategy | to reach random | final HV | final HV vs default (p) | true front found "
                  "| seeds reaching | trained |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for s, r in res["rows"].items():
            p = "-" if math.isnan(r["p_vs_default"]) else f"{r['p_vs_default']:.2g}"
            lines.append(f"| {s} | {fmt(r['reach'], pct=True)} | {fmt(r['final'])} | {p} "
                         f"| {fmt(r['recovery'], pct=True)} | {r['reached']}/{r['seeds']} | {r['trained']:.0f} |")
        lines.append(verdict(res))
        short = {s: n for s, n in early.get(label, {}).items() if n}
        if short:
            lines.append("Runs that ended before the budget (100 proposals in a row repeated trained architectures: "
                         "converged, or the space exhausted): "
                         + ", ".join(f"{s} {n}" for s, n in short.items()) + ".")
        lines.append("")
    core = sum(sum(v) for s, v in cpu.items() if s.split(" (")[0] in CORE)
    total = sum(sum(v) for v in cpu.values())
    lines += ["Mean CPU seconds per simulated search: " + ", ".join(
        f"{s} {statistics.fmean(v):.1f}" for s, v in cpu.items()) + ". Replaying everything above costs "
        f"{total / 60:.0f} CPU-minutes; the core comparison (random, TPE and NSGA-II, each with and without MO-ASHA, "
        f"{args.seeds} seeds, both objective sets) {core / 60:.1f} CPU-minutes, {core / 60 / args.jobs:.1f} min "
        f"on {args.jobs} processes; the GP sampler and Syne Tune's peers take the rest.", "",
        "![hypervolume against compute](bench/results/simulated_search.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
