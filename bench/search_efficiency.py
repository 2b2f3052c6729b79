"""Search efficiency: hypervolume (top-1 vs MACs, fixed reference point) against compute, default search
(auto sampler + MO-ASHA) vs random search without early stopping, several seeds; and framework overhead.

    PYTHONPATH=. python bench/search_efficiency.py --space search_spaces/strip_mlp.yaml --seeds 0 1 2 \\
        --trials 40 --random-trials 40 --max-epochs 2 --fraction 0.05 [--write]

Compute is the sum of the trials' training wall time (``wall_time_s`` of every trained record, in order of
completion); the hypervolume at a compute level uses the COMPLETE trials finished by then. Overhead per
trial is ``(search wall time x concurrency - sum of trial time) / trained trials``, as a share of the mean
trial time. ``--write`` puts the table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(space: str, out: Path, seed: int, trials: int, sampler: str, scheduler: str, args) -> float:
    cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", space, "--out", str(out), "--seed", str(seed),
           "--trials", str(trials), "--sampler", sampler, "--scheduler", scheduler, "--max-epochs",
           str(args.max_epochs), "--fraction", str(args.fraction), "--val-fraction", str(args.val_fraction),
           "--concurrency", str(args.concurrency)]
    if args.dataset:
        cmd += ["--dataset", args.dataset]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def curve(out: Path, ref: tuple[float, float]) -> tuple[list[tuple[float, float]], float, int]:
    """[(cumulative compute s, hypervolume)], total trial time, trained trials."""
    import optuna

    from mixnas.pareto import hypervolume

    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    trained = [t for t in study.get_trials() if t.user_attrs.get("status") in ("completed", "pruned", "failed")
               and "duplicate_of" not in t.user_attrs and t.datetime_complete is not None]
    trained.sort(key=lambda t: t.datetime_complete)
    points, compute, pts = [], 0.0, []
    for t in trained:
        compute += float(t.user_attrs.get("wall_time_s", 0.0))
        if t.state.name == "COMPLETE":
            pts.append(list(t.values[:2]))
        points.append((compute, hypervolume(pts, ("max", "min"), ref)))
    return points, compute, len(trained)


def hv_at(points: list[tuple[float, float]], compute: float) -> float:
    best = 0.0
    for c, hv in points:
        if c <= compute:
            best = hv
    return best


def compute_to_reach(points: list[tuple[float, float]], target: float) -> float | None:
    for c, hv in points:
        if hv >= target:
            return c
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="search_spaces/strip_mlp.yaml")
    ap.add_argument("--dataset")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--random-trials", type=int, default=40)
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--ref-macs", type=float, default=150e6, help="reference point MACs (top-1 reference is 0)")
    ap.add_argument("--root", default="runs/bench-search")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    root = Path(args.root) / time.strftime("%Y%m%d-%H%M%S")
    ref = (0.0, args.ref_macs)
    rows, ratios, overheads = [], [], []
    for seed in args.seeds:
        res = {}
        for name, trials, sampler, scheduler in (("default", args.trials, "auto", "moasha"),
                                                 ("random", args.random_trials, "random", "none")):
            out = root / f"{name}-s{seed}"
            wall = run(args.space, out, seed, trials, sampler, scheduler, args)
            points, total, n = curve(out, ref)
            res[name] = (points, total)
            if n:
                overheads.append(((wall * args.concurrency - total) / n) / (total / n))
            rows.append(f"| {seed} | {name} | {n} | {total:.0f} | {points[-1][1] if points else 0:.4g} | "
                        f"{wall:.0f} |")
        target = res["random"][0][-1][1] if res["random"][0] else 0.0
        need = compute_to_reach(res["default"][0], target)
        if need is not None and res["random"][1] > 0:
            ratios.append(need / res["random"][1])
    md = [f"Hypervolume of (top-1 %, MACs) with reference (0, {args.ref_macs:.3g}); compute = summed trial time.",
          "", "| seed | search | trained | compute s | final HV | wall s |", "|---|---|---|---|---|---|", *rows, "",
        f"Compute the default needs to reach random search's final HV, as a share of random's compute: "
        f"{', '.join(f'{r:.2f}' for r in ratios) or 'not reached'}"
        + (f" (mean {statistics.mean(ratios):.2f}; target <= 0.33)" if ratios else ""),
        f"Framework overhead per trial, share of trial time: "
        f"{', '.join(f'{o:.1%}' for o in overheads)} (includes Ray start-up and idle slots)."]
    print("\n".join(md))
    if args.write:
        from bench._report import write_section

        write_section("Search efficiency", "\n".join(md))


if __name__ == "__main__":
    main()
