"""The README's quickstart search, timed: wall time, trial counts, Pareto front, framework overhead.

Runs exactly the quickstart command (``mixnas search --space search_spaces/strip_mlp.yaml``, all defaults)
into a fresh run folder, then reads the study back and writes the "Quickstart search" section of
BENCHMARKS.md (``--no-write`` only prints it).

    PYTHONPATH=. python -m bench.quickstart
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
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    from bench._report import write_section
    from bench.search_efficiency import _machine, load_trials
    from mixnas.search import slot_gaps
    from mixnas.search_cli import QUICKSTART

    out = Path(args.out)
    cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", SPACE, "--out", str(out)]
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
        return res.returncode
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
    summary = res.stdout[res.stdout.find("Pareto front:"):].strip()
    top1 = [t.user_attrs["objectives"]["top1"] for t in trials if t.state.name == "COMPLETE"]
    md = [f"Command: `mixnas search --space {SPACE} --out {out}` (the README's quickstart; run by "
          f"`PYTHONPATH=. python -m bench.quickstart`). {_machine(load_start)}", "",
          f"Defaults: {QUICKSTART['trials']} trials of up to {QUICKSTART['max_epochs']} epochs on "
          f"{QUICKSTART['fraction']:.0%} of the Fashion-MNIST training split ({QUICKSTART['val_fraction']:.0%} "
          f"held out), {QUICKSTART['concurrency']} concurrent 1-CPU trials, MO-ASHA (grace 1, eta "
          f"{QUICKSTART['eta']:g}), NSGA-II (the space is flat).", "",
          "| | value |", "|---|---|",
          f"| wall time (whole command, Ray start included) | {wall / 60:.0f} min {wall % 60:.0f} s |",
          "| trials by state | " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())) + " |",
          f"| best validation top-1 | {max(top1):.2f} % |" if top1 else "| best validation top-1 | - |",
          f"| mean trial time | {statistics.mean(walls):.1f} s |" if walls else "| mean trial time | - |",
          (f"| framework overhead per trial (gap between trials on a worker) | {statistics.mean(gaps):.2f} s, "
           f"{statistics.mean(gaps) / statistics.mean(walls):.1%} of the mean trial time |") if gaps and walls
          else "| framework overhead per trial | - |",
          "", "```", summary, "```"]
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        write_section(TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
