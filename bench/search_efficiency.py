"""Search efficiency: hypervolume (top-1 vs MACs, fixed reference point) against compute, for the default
search (auto sampler + MO-ASHA) and for random search without early stopping, on the quickstart proxy
(Fashion-MNIST, the quickstart's fraction, epochs and concurrency), several seeds; and the framework's
overhead per trial.

    PYTHONPATH=. python -m bench.search_efficiency --seeds 0 1 2            # writes BENCHMARKS.md
    PYTHONPATH=. python -m bench.search_efficiency --seeds 0 --no-write     # only prints
    # the live confirmation of the simulated benchmark: its space, at the fidelity its table recommends
    PYTHONPATH=. python -m bench.search_efficiency --seeds 0 1 2 --space search_spaces/mixnas_bench.yaml \
        --table bench/tables/fmnist32 --max-epochs 8 --grace 2 --trials 60 --random-trials 30 --target 0.5

Both searches run through ``mixnas search`` (a subprocess each, one after the other, same settings apart from
sampler, scheduler and trial count). The default search gets more trials than random search because most of
its trials are stopped early; the comparison is at equal compute:

* compute = summed training wall time of the trained trials, in order of completion (what a user pays); also
  given as training MACs (sum over trials of epochs x training images x 3 x forward MACs, independent of
  the machine's load);
* the hypervolume at a compute level uses the COMPLETE trials finished by then (the front a user would get
  if the search stopped there), with the reference point (chance top-1 = 10 %, the space's ``max_macs``);
* "compute to reach" = the compute the default search needed to reach random search's final hypervolume,
  as a share of random search's total compute (target: at most one third).

Overhead per trial = the mean gap between two trials on one worker process (:func:`mixnas.search_driver.slot_gaps`:
Tune's scheduling, Optuna's ask/tell, checks not ready in time), as a share of the mean trial time; Ray's
start-up is reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Search efficiency"
LIVE_TITLE = "Live confirmation on mixnas-bench"  # with --table: the benchmark's space and fidelity, trained
CHANCE_TOP1 = 10.0


def run_search(space: str, out: Path, seed: int, trials: int, sampler: str, scheduler: str,
               args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", space, "--out", str(out), "--seed", str(seed),
           "--trials", str(trials), "--sampler", sampler, "--scheduler", scheduler]
    for flag in ("max_epochs", "fraction", "val_fraction", "concurrency", "eta", "grace"):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    t0 = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def load_trials(out: Path) -> list[Any]:
    import yaml

    from mixnas import optuna_io

    resolved = yaml.safe_load((out / "search.yaml").read_text())["resolved"]
    study = optuna_io.load_existing(optuna_io.storage_for(resolved["storage"]), resolved["study_name"])
    return study.get_trials(deepcopy=False)


def hv_curve(trials: list[Any], ref: tuple[float, float], images: int, scale: Any = None,
             unit: float = 1.0) -> list[dict[str, float]]:
    """[{seconds, macs, hv}] after each trained trial, in order of completion. ``scale`` (a
    :class:`mixnas.efficiency.Scale`): the hypervolume normalised as on a benchmark table (log MACs), divided
    by ``unit`` (the table's true front's); else the raw hypervolume against ``ref``."""
    from mixnas.pareto import hypervolume, pareto_front

    trained = [t for t in trials if t.user_attrs.get("status") in ("completed", "pruned", "failed")
               and "duplicate_of" not in t.user_attrs and t.datetime_complete is not None
               and t.user_attrs.get("wall_time_s")]
    trained.sort(key=lambda t: t.datetime_complete)
    rows, seconds, macs, points = [], 0.0, 0.0, []
    for t in trained:
        a = t.user_attrs
        seconds += float(a["wall_time_s"])
        macs += float(a.get("fidelity", 0)) * images * 3 * float(a.get("macs", 0))
        if t.state.name == "COMPLETE":
            points.append([a["objectives"]["top1"], a["objectives"]["macs"]])
        hv = scale.hv(points) / unit if scale is not None else hypervolume(points, ("max", "min"), ref)
        rows.append({"seconds": seconds, "macs": macs, "hv": hv, "front": len(pareto_front(points, ("max", "min")))})
    return rows


def hv_at(curve: list[dict[str, float]], budget: float, key: str = "seconds") -> float:
    best = 0.0
    for row in curve:
        if row[key] <= budget:
            best = row["hv"]
    return best


def compute_to_reach(curve: list[dict[str, float]], target: float, key: str = "seconds") -> float | None:
    for row in curve:
        if row["hv"] >= target > 0:
            return row[key]
    return None


def summarise(runs: dict[int, dict[str, dict[str, Any]]], ref: tuple[float, float], share: float = 1 / 3,
              fmt_hv: Any = None) -> tuple[str, dict[str, list[float]]]:
    """The markdown table and the per-seed compute-to-reach ratios, by compute measure (seconds, MACs);
    ``share``: the column "HV at that share of random's compute"; ``fmt_hv`` formats a hypervolume."""
    fmt_hv = fmt_hv or (lambda v: f"{v / 1e6:.1f}")
    lines = ["| seed | search | trials trained (complete / pruned) | compute s | training TMACs | final HV "
             f"| HV at {share:.2g} of random's compute | front | wall s | overhead per trial |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    ratios: dict[str, list[float]] = {}
    for seed, res in sorted(runs.items()):
        rnd = res["random"]["curve"]
        rnd_total = rnd[-1]["seconds"] if rnd else 0.0
        target = rnd[-1]["hv"] if rnd else 0.0
        for name in ("default", "random"):
            r = res[name]
            c = r["curve"]
            states = [t.state.name for t in r["trials"] if t.user_attrs.get("status") in ("completed", "pruned")
                      and "duplicate_of" not in t.user_attrs]
            last = c[-1] if c else {"seconds": 0, "macs": 0, "hv": 0, "front": 0}
            lines.append(f"| {seed} | {name} | {len(states)} ({states.count('COMPLETE')} / {states.count('PRUNED')}) "
                         f"| {last['seconds']:.0f} | {last['macs'] / 1e12:.3f} | {fmt_hv(last['hv'])} "
                         f"| {fmt_hv(hv_at(c, rnd_total * share))} | {r['front']} | {r['wall']:.0f} | {r['overhead']} |")
        for key in ("seconds", "macs"):
            total = rnd[-1][key] if rnd else 0.0
            need = compute_to_reach(res["default"]["curve"], target, key)
            ratios.setdefault(key, []).append(need / total if need is not None and total > 0 else float("inf"))
    return "\n".join(lines), ratios


def main(argv: list[str] | None = None) -> int:
    from mixnas.cli.search import QUICKSTART

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/strip_mlp.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=24, help="default search's trials (most stop early)")
    ap.add_argument("--random-trials", type=int, default=14, help="random search's trials (all train fully)")
    ap.add_argument("--max-epochs", type=int, default=QUICKSTART["max_epochs"])
    ap.add_argument("--fraction", type=float, default=QUICKSTART["fraction"])
    ap.add_argument("--val-fraction", type=float, default=QUICKSTART["val_fraction"])
    ap.add_argument("--concurrency", type=int, default=QUICKSTART["concurrency"])
    ap.add_argument("--eta", type=float, default=QUICKSTART.get("eta"))
    ap.add_argument("--grace", type=int, default=QUICKSTART["grace"])
    ap.add_argument("--table", help="a mixnas-bench table of --space: hypervolume normalised as on the table (log "
                    "MACs, share of its true front's), the section 'Live confirmation on mixnas-bench'")
    ap.add_argument("--target", type=float, default=1 / 3,
                    help="the verdict's bound on the default's compute to reach random's HV (default 1/3)")
    ap.add_argument("--root", default="runs/bench-search")
    ap.add_argument("--from", dest="from_root", help="re-analyse the finished runs in this folder (a previous "
                    "--root/TIMESTAMP) instead of running searches; seeds without both runs are left out")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    from bench._report import load_average, machine_note, publish
    from mixnas.search_driver import slot_gaps
    from mixnas.space import load_space

    budget = load_space(args.space).constraints.max_macs
    ref = (CHANCE_TOP1, float(budget) if budget else 1e9)
    scale, unit, fmt_hv = None, 1.0, None
    if args.table:
        from mixnas.efficiency import Scale, table_points, true_front
        from mixnas.tabular import Table

        pts = table_points(Table(args.table), ["top1", "macs"])
        scale = Scale.of(["top1", "macs"], ["max", "min"], list(pts.values()))
        unit = scale.hv([pts[d] for d in true_front(pts, ["max", "min"])])
        fmt_hv = "{:.3f}".format
    root = Path(args.from_root) if args.from_root else Path(args.root) / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=bool(args.from_root))
    load_start = None if args.from_root else load_average()
    started = time.time()
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in args.seeds:
        for name, trials, sampler, scheduler in (("default", args.trials, "auto", "moasha"),
                                                 ("random", args.random_trials, "random", "none")):
            out = root / f"{name}-s{seed}"
            if args.from_root:  # re-analyse finished runs; the wall time comes from their logs
                if not finished(out):
                    print(f"seed {seed}: {name}: no finished run in {out}, skipped", flush=True)
                    continue
                wall = log_wall_time(out)
            else:
                print(f"seed {seed}: {name} search, {trials} trials -> {out}", flush=True)
                wall = run_search(args.space, out, seed, trials, sampler, scheduler, args)
            trials_ = load_trials(out)
            images = _images_per_epoch(trials_)
            curve = hv_curve(trials_, ref, images, scale, unit)
            gaps = slot_gaps(trials_)
            walls = [t.user_attrs["wall_time_s"] for t in trials_ if t.user_attrs.get("wall_time_s")]
            overhead = (f"{statistics.mean(gaps):.2f} s = {statistics.mean(gaps) / statistics.mean(walls):.1%}"
                        if gaps and walls else "-")
            runs.setdefault(seed, {})[name] = {"trials": trials_, "curve": curve, "wall": wall,
                                               "front": curve[-1]["front"] if curve else 0, "overhead": overhead,
                                               "mean_trial": statistics.mean(walls) if walls else 0.0,
                                               "mean_gap": statistics.mean(gaps) if gaps else None}
            print(f"  {wall:.0f} s, final HV {curve[-1]['hv'] if curve else 0:.4g}, overhead {overhead}",
                  flush=True)
    runs = {seed: res for seed, res in runs.items() if len(res) == 2}
    if not runs:
        print("no seed has both a default and a random run")
        return 1
    table, ratios = summarise(runs, ref, args.target, fmt_hv)
    mean_trial = statistics.mean(r["mean_trial"] for res in runs.values() for r in res.values())
    worst_gap = max((r["mean_gap"] for res in runs.values() for r in res.values() if r["mean_gap"] is not None),
                    default=float("nan"))
    command = f"PYTHONPATH=. python -m bench.search_efficiency --seeds {' '.join(map(str, sorted(runs)))}"
    if args.table:
        command += (f" --space {args.space} --table {args.table} --trials {args.trials} --random-trials "
                    f"{args.random_trials} --max-epochs {args.max_epochs} --grace {args.grace} --target {args.target:g}")
    hv_text = (f"Hypervolume of (top-1 %, MACs) normalised as on the table `{args.table}` (top-1 linearly, MACs on a log "
               "scale, by the table's range; reference 1.1), as a share of the table's true front's"
               if args.table else
               f"Hypervolume of (top-1 %, MACs) with reference point (top-1 {CHANCE_TOP1:g} %, {ref[1] / 1e6:g}M "
               "MACs), in units of 1e6 (% x MACs)")
    took = (f"the runs took {sum(r['wall'] for res in runs.values() for r in res.values()) / 60:.0f} min; "
            f"analysed from {root}" if args.from_root else f"{(time.time() - started) / 60:.0f} min")
    md = [f"Command: `{command}` ({took}). {machine_note(load_start)}", "",
          f"Space `{args.space}`, Fashion-MNIST proxy: {args.fraction:g} of the training split per trial, "
          f"{args.val_fraction:g} held out for validation, up to {args.max_epochs} epochs, {args.concurrency} "
          f"concurrent 1-CPU trials. Default = `mixnas search` defaults (auto sampler, MO-ASHA, eta "
          f"{args.eta:g}, grace {args.grace}) with {args.trials} trials; random = `--sampler random --scheduler none` "
          f"with {args.random_trials} trials. {hv_text}; compute = summed trial wall time.", "", table, "",
          *[reach_line(label, ratios[key], args.target) for key, label in (("seconds", "summed trial wall time"),
                                                                         ("macs", "training MACs"))],
          "",
          f"Framework overhead per trial (gap between trials on a worker, as a share of the mean trial time of "
          f"{mean_trial:.0f} s): see the last column. The gap is a fixed cost per trial (Tune's scheduling, Optuna's "
          f"ask and tell; the next candidate's checks run while the previous trial trains), so for "
          f"30-second trials the largest gap measured here, {worst_gap:.2f} s, is {worst_gap / 30:.1%} "
          f"(target <= 5 %: {'met' if worst_gap / 30 <= 0.05 else 'not met'})."]
    text = "\n".join(md)
    publish(LIVE_TITLE if args.table else TITLE, text, write=not args.no_write)
    return 0


def finished(out: Path) -> bool:
    """Whether ``out`` holds a search that ran to its end (its log's last line says no trial is running)."""
    log = out / "search.log"
    if not (out / "search.yaml").is_file() or not log.is_file():
        return False
    lines = log.read_text().strip().splitlines()
    return bool(lines) and " 0 running" in lines[-1] and "done" in lines[-1]


def log_wall_time(out: Path) -> float:
    """Seconds from the run's settings file (written before launch) to the last line of its log."""
    import datetime

    last = (out / "search.log").read_text().strip().splitlines()[-1]
    end = datetime.datetime.strptime(last[:19], "%Y-%m-%d %H:%M:%S").timestamp()
    return end - (out / "search.yaml").stat().st_mtime


def reach_line(label: str, ratios: list[float], target: float = 1 / 3) -> str:
    """One sentence: the default's compute to reach random search's final HV, per seed, and the verdict
    (met when every seed reached it and the median is at most ``target``)."""
    finite = [r for r in ratios if r != float("inf")]
    per_seed = ", ".join("not reached" if r == float("inf") else f"{r:.2f}" for r in ratios)
    met = bool(finite) and len(finite) == len(ratios) and statistics.median(finite) <= target
    median = f" (median {statistics.median(finite):.2f})" if finite and len(finite) == len(ratios) else ""
    return (f"- Compute ({label}) the default search needed to reach random search's final hypervolume, as a "
            f"share of random search's total: {per_seed}{median}; target <= {target:.2f}: "
            f"{'met' if met else 'not met'}.")


def _images_per_epoch(trials: list[Any]) -> int:
    """Training images per epoch of the run's proxy (every trial trains on the same fraction)."""
    for t in trials:
        for row in t.user_attrs.get("curve", []):
            if row.get("images_per_s") and row.get("train_time_s"):
                return round(row["images_per_s"] * row["train_time_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
