"""The README's quickstart search, timed: wall time, trial counts, Pareto front, framework overhead.

Runs exactly the quickstart command (``mixnas search --space search_spaces/strip_mlp.yaml``, all defaults)
into a fresh run folder, then reads the study back and writes the "Quickstart search" section of
BENCHMARKS.md (``--no-write`` only prints it). ``--from RUN`` analyses a finished run instead, after checking
that its settings are the quickstart's defaults (the wall time then comes from its log).

    PYTHONPATH=. python -m bench.quickstart
    PYTHONPATH=. python -m bench.quickstart --from runs/quickstart
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
TITLE = "Quickstart search"
SPACE = "search_spaces/strip_mlp.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=f"runs/bench-quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    ap.add_argument("--from", dest="from_run", help="analyse this finished quickstart run instead of running one")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    from bench._report import load_average, machine_note, publish
    from bench.search_efficiency import load_trials, log_wall_time
    from mixnas.cli.search import QUICKSTART
    from mixnas.search_driver import slot_gaps

    load_start = None if args.from_run else load_average()
    if args.from_run:
        out = Path(args.from_run)
        check_defaults(out, QUICKSTART)
        wall = log_wall_time(out)
        how = f"analysed from the run folder `{out}` by `PYTHONPATH=. python -m bench.quickstart --from {out}`"
    else:
        out = Path(args.out)
        cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", SPACE, "--out", str(out)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                             text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
            return res.returncode
        how = "run by `PYTHONPATH=. python -m bench.quickstart`"
    trials = load_trials(out)
    states: dict[str, int] = {}
    for t in trials:
        status = t.user_attrs.get("status", "")
        key = status if status in ("infeasible", "invalid") else t.state.name
        if "duplicate_of" in t.user_attrs:
            key += " (re-used)"
        states[key] = states.get(key, 0) + 1
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs
               and t.user_attrs.get("status") in ("completed", "pruned", "failed")]
    walls = [t.user_attrs["wall_time_s"] for t in trained if t.user_attrs.get("wall_time_s")]
    gaps = slot_gaps(trials)
    summary = front_table(trials)
    top1 = [t.user_attrs["objectives"]["top1"] for t in trials if t.state.name == "COMPLETE"]
    md = [f"Command: `mixnas search --space {SPACE} --out {out}` (the README's quickstart with its defaults; "
          f"{how}). {machine_note(load_start)}", "",
          f"Defaults: {QUICKSTART['trials']} trials of up to {QUICKSTART['max_epochs']} epochs on "
          f"{QUICKSTART['fraction']:.0%} of the Fashion-MNIST training split ({QUICKSTART['val_fraction']:.0%} "
          f"held out), {QUICKSTART['concurrency']} concurrent 1-CPU trials, MO-ASHA (grace 1, eta "
          f"{QUICKSTART['eta']:g}), NSGA-II (the space is flat).", "",
          "| | value |", "|---|---|",
          f"| wall time (Ray start included) | {int(wall // 60)} min {wall % 60:.0f} s |",
          "| trials by state | " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())) + " |",
          f"| best validation top-1 | {max(top1):.2f} % |" if top1 else "| best validation top-1 | - |",
          f"| mean trial time | {statistics.mean(walls):.1f} s |" if walls else "| mean trial time | - |",
          (f"| framework overhead per trial (gap between trials on a worker) | {statistics.mean(gaps):.2f} s, "
           f"{statistics.mean(gaps) / statistics.mean(walls):.1%} of the mean trial time |") if gaps and walls
          else "| framework overhead per trial | - |",
          "", "```", summary, "```"]
    text = "\n".join(md)
    publish(TITLE, text, write=not args.no_write)
    return 0


def check_defaults(out: Path, defaults: dict) -> None:
    """Refuse a run whose settings differ from the quickstart's defaults (the section would misreport it)."""
    import yaml

    settings = yaml.safe_load((out / "search.yaml").read_text())["settings"]
    got = {"trials": settings["trials"], "max_epochs": settings["max_epochs"], "eta": settings["eta"],
           "concurrency": settings["concurrency"], "fraction": settings["train"].get("fraction"),
           "val_fraction": settings["train"].get("val_fraction")}
    wrong = {k: v for k, v in got.items() if v != defaults[k]}
    extra = {k: settings[k] for k in ("space", "sampler", "scheduler", "seed", "objectives", "dataset")
             if settings[k] != {"space": SPACE, "sampler": "auto", "scheduler": "moasha", "seed": 0}.get(k)}
    if wrong or extra:
        raise SystemExit(f"{out}: not a quickstart run with the defaults: {wrong or ''} {extra or ''}")


def front_table(trials: list) -> str:
    """The Pareto front of the COMPLETE trials as the search prints it (trial, top-1, MACs, digest)."""
    from mixnas.pareto import pareto_front

    done = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    front = [done[i] for i in pareto_front([list(t.values) for t in done], ("max", "min"))]
    lines = [f"Pareto front: {len(front)} architectures (complete trials)", "  trial   top1 %     MACs  digest"]
    for t in sorted(front, key=lambda t: t.values[1]):
        lines.append(f"  {t.number:5d}  {t.values[0]:7.2f}  {t.values[1] / 1e6:6.2f}M  {t.user_attrs['digest']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
