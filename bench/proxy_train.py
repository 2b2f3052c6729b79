"""The proxy-training acceptance run: a ~1M-parameter Strip-MLP, 32x32 Fashion-MNIST, 3 epochs, this CPU.

Runs the exact ``mixnas train`` command below in a subprocess (a fresh process, as a user would), then writes
its validation top-1, wall time and per-epoch curve to the "Proxy training on Fashion-MNIST" section of
BENCHMARKS.md. The issue's target: at least 85 % validation top-1 on 2 CPU cores.

    PYTHONPATH=. python -m bench.proxy_train [--bf16] [--threads N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._report import load_average, load_note, machine

TITLE = "Proxy training on Fashion-MNIST"
ROOT = Path(__file__).resolve().parents[1]
ARCH = "examples/strip_mlp_1m_fmnist.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=ARCH, help=f"ArchConfig YAML or named model (default {ARCH})")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion-mnist", help="(digits: a quick check of this script)")
    parser.add_argument("--bf16", action="store_true", help="pass --bf16 to mixnas train")
    parser.add_argument("--threads", type=int, help="pass --threads to mixnas train")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="mixnas-proxy-train-"))
    cmd = ["mixnas", "train", args.arch, "--dataset", args.dataset, "--epochs", str(args.epochs),
           "--out", str(out)]
    if args.bf16:
        cmd.append("--bf16")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    shown = " ".join(shlex.quote(c) for c in cmd if not c.startswith(str(out))).replace(" --out", "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_start = load_average()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mixnas.cli", *cmd[1:]], cwd=ROOT, env=env, text=True,
                          capture_output=True)
    wall = time.perf_counter() - start
    load_end = load_average()
    sys.stderr.write(proc.stderr)
    print(proc.stdout)
    if proc.returncode != 0:
        print(f"mixnas train failed with exit code {proc.returncode}; its output is in {out}", file=sys.stderr)
        return proc.returncode
    m = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    curve = "\n".join(f"| {e['epoch']} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | {e['val_top1']:.2f} % | "
                      f"{e['images_per_s']:.0f} | {e['epoch_time_s']:.0f} s |" for e in m["curve"])
    shared = load_note(load_start, load_end, "on an idle machine the wall time is shorter (the accuracy does "
                       "not depend on it).")
    target = m["val_top1"] is not None and m["val_top1"] >= 85.0
    text = f"""Command: `{shown}` (run by `PYTHONPATH=. python -m bench.proxy_train{' --bf16' if args.bf16 else ''}`).
mixnas {m['code']['mixnas']} at {(m['code']['git_commit'] or 'no git')[:12]}.
{machine(m['env']['threads'], m['env']['torch'])}. {shared}

Model `{m['arch']['name']}`: {m['params']:,} parameters, digest `{m['digest']}`. Data: {m['data']['train']} training
and {m['data']['val']} validation images (a stratified 10 % hold-out of the official training set, seed
{m['data']['split_seed']}) of {m['data']['name']}, at {m['data']['image_size']}x{m['data']['image_size']}. Recipe (the `TrainConfig` saved with the result):
`{json.dumps({k: v for k, v in m["config"].items() if v is not None})}`.

| epoch | train loss | val loss | val top-1 | img/s | epoch time |
|---|---|---|---|---|---|
{curve}

Result: status {m['status']}, **validation top-1 {m['val_top1']:.2f} %** after {args.epochs} epochs, wall time
{wall:.0f} s for the whole command (start-up and data loading included; {m['wall_time_s']:.0f} s in `train`).
Target (>= 85 %): {'met' if target else 'NOT met'}.
"""
    from bench._report import publish

    publish(TITLE, text, write=not args.no_write)
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
