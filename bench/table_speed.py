"""What pays for the trials of a mixnas-bench build: precision, AdamW implementation, torch.compile, threads.

    PYTHONPATH=. python -m bench.table_speed            # writes the section of BENCHMARKS.md
    PYTHONPATH=. python -m bench.table_speed --no-write # only prints it

A build trains hundreds of small models for ``epochs x fraction x 54,000`` images each (8 x 5,400 = 43,200
images, 337 steps of 128 at the shipped table's settings), so its cost is the training step of small
models. For one architecture per token-mixer family of the space (seeded), the trainer's step (forward under
autocast or not, label-smoothed cross-entropy, backward, gradient clipping, AdamW with the trainer's
parameter groups) is timed in CPU seconds at one thread on one fixed batch, variants interleaved in rotating
order, median of ``--repeats`` rounds of ``--steps`` steps after warm-up:

* ``fp32``: what the trainer does by default (PyTorch's default AdamW on CPU: the for-loop implementation);
* ``fp32 foreach`` / ``fp32 fused``: AdamW with ``foreach=True`` / ``fused=True``;
* ``bf16``: bfloat16 autocast (AMX through oneDNN);
* ``compile``: ``torch.compile`` of the model (fp32), on ``--compile-archs`` architectures; its compile time
  (the first steps) is counted against one trial of the table's length.

Threads: the same two architectures trained for ``--thread-steps`` steps each by two one-thread processes at
once, against one after the other in one two-thread process (wall clock of the training itself, imports and
model building excluded; the machine should be otherwise idle).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Training speed for the benchmark table"
SPACE = ROOT / "search_spaces" / "mixnas_bench.yaml"
BATCH = 128
VARIANTS = ("fp32", "fp32 foreach", "fp32 fused", "bf16")


def pick_archs(seed: int = 0) -> list[Any]:
    """One architecture per token-mixer family of the benchmark space (seeded)."""
    from mixnas.space import load_space
    from mixnas.tabular import space_archs

    by_family: dict[str, list[Any]] = {}
    for a in space_archs(load_space(SPACE)):
        by_family.setdefault(a.stages[0].token_mixer.name, []).append(a)
    rng = random.Random(seed)
    return [rng.choice(v) for _, v in sorted(by_family.items())]


def make_step(arch: Any, variant: str, compiled: bool = False) -> Any:
    import torch
    from torch.nn import functional as F

    from mixnas.network import build_model
    from mixnas.train import param_groups

    model = build_model(arch, seed=0)
    model.train()
    kw = {"foreach": True} if variant == "fp32 foreach" else {"fused": True} if variant == "fp32 fused" else {}
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, **kw)
    params = [p for p in model.parameters() if p.requires_grad]
    fwd = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(0)
    s = arch.input.image_size
    x = torch.randn(BATCH, arch.input.in_channels, s, s, generator=g)
    y = torch.randint(0, arch.input.num_classes, (BATCH,), generator=g)
    bf16 = variant == "bf16"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        float(loss.detach())

    return step


def cpu_time(fn: Any, steps: int) -> float:
    t0 = time.process_time()
    for _ in range(steps):
        fn()
    return (time.process_time() - t0) / steps


def variants_round(args: argparse.Namespace, archs: list[Any]) -> dict[str, dict[str, float]]:
    """Seconds per step, per architecture and variant (median over rounds, rotating order)."""
    out: dict[str, dict[str, float]] = {}
    for arch in archs:
        steps = {v: make_step(arch, v) for v in VARIANTS}
        for fn in steps.values():
            for _ in range(3):
                fn()
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(args.repeats):
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
            for v in order:
                samples[v].append(cpu_time(steps[v], args.steps))
        out[label(arch)] = {v: statistics.median(s) for v, s in samples.items()}
        print(f"  {label(arch)}: " + ", ".join(f"{v} {1e3 * t:.1f} ms" for v, t in out[label(arch)].items()),
              file=sys.stderr, flush=True)
    return out


def cold_compile_cache() -> None:
    """Point Inductor at an empty cache before anything compiles: a build's workers compile each new
    architecture cold, and a cache warmed by an earlier run would hide that cost."""
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mixnas-inductor-")
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "0"


def compile_costs(args: argparse.Namespace, archs: list[Any]) -> dict[str, dict[str, float]]:
    """Per architecture: compile time (the first call's CPU time beyond an eager step) and steady step times."""
    out = {}
    for arch in archs[:args.compile_archs]:
        eager = make_step(arch, "fp32")
        for _ in range(3):
            eager()
        comp = make_step(arch, "fp32", compiled=True)
        t0 = time.perf_counter()
        comp()
        comp()
        first = time.perf_counter() - t0
        e, c = [], []
        for _ in range(args.repeats):
            e.append(cpu_time(eager, args.steps))
            c.append(cpu_time(comp, args.steps))
        out[label(arch)] = {"compile_s": first, "eager": statistics.median(e), "compiled": statistics.median(c)}
        print(f"  compile {label(arch)}: {first:.1f} s, eager {1e3 * out[label(arch)]['eager']:.1f} ms, compiled "
              f"{1e3 * out[label(arch)]['compiled']:.1f} ms", file=sys.stderr, flush=True)
    return out


def _train_steps(arch_dicts: list[dict], steps: int, threads: int, times: Any) -> None:
    """Train each architecture for ``steps`` steps; put (start, end) of the training itself on ``times``
    (imports and model building are not timed)."""
    import torch

    from mixnas.config import ArchConfig

    torch.set_num_threads(threads)
    built = [make_step(ArchConfig.from_dict(d), "fp32") for d in arch_dicts]
    for step in built:
        step()
    t0 = time.time()
    for step in built:
        for _ in range(steps):
            step()
    times.put((t0, time.time()))


def threads_check(args: argparse.Namespace, archs: list[Any]) -> dict[str, float]:
    """Wall seconds of the training itself: two one-thread processes at once (first start to last end) vs
    one two-thread process doing both architectures one after the other."""
    pair = [archs[0].to_dict(), archs[1].to_dict()]
    ctx = mp.get_context("spawn")
    out: dict[str, list[float]] = {"2 x 1 thread": [], "1 x 2 threads": []}
    for _ in range(args.thread_rounds):
        for name, groups, threads in (("2 x 1 thread", [[pair[0]], [pair[1]]], 1), ("1 x 2 threads", [pair], 2)):
            times = ctx.Queue()
            ps = [ctx.Process(target=_train_steps, args=(g, args.thread_steps, threads, times)) for g in groups]
            for p in ps:
                p.start()
            spans = [times.get() for _ in ps]
            for p in ps:
                p.join()
            out[name].append(max(e for _, e in spans) - min(s for s, _ in spans))
    return {k: statistics.median(v) for k, v in out.items()}


def choice(totals: dict[str, float], comp: dict, thr: dict, trial_steps: int) -> str:
    """The settings that pay: a variant only if it saves at least 5 % of the summed step time; compile only
    if it makes most trials cheaper with its compile time counted; one two-thread job only if it is at least
    5 % faster than two independent one-thread jobs."""
    best = min(totals, key=totals.get)
    variant = best if totals[best] < 0.95 * totals["fp32"] else "fp32"
    adamw = {"fp32 foreach": "foreach AdamW", "fp32 fused": "fused AdamW"}.get(variant, "the default AdamW")
    precision = "bf16 autocast" if variant == "bf16" else "fp32"
    wins = sum(c["compile_s"] + trial_steps * c["compiled"] < trial_steps * c["eager"] for c in comp.values())
    compiled = "torch.compile" if comp and wins > len(comp) / 2 else "no torch.compile"
    threads = ("one two-thread job at a time" if thr and thr["1 x 2 threads"] < 0.95 * thr["2 x 1 thread"]
               else "two one-thread jobs at a time")  # independent jobs unless threads clearly win
    return f"{precision}, {adamw}, {compiled}, {threads}"


def label(arch: Any) -> str:
    st = arch.stages[0]
    return f"{st.token_mixer.name} d{st.dim}x{st.depth}"


def render(args: argparse.Namespace, per: dict, comp: dict, thr: dict, trial_steps: int, load: str = "") -> str:
    from bench._report import machine

    load = load if not load or load.endswith(".") else load + "."
    lines = [f"`PYTHONPATH=. python -m bench.table_speed` ({machine()}). {load} CPU seconds per training "
             f"step at batch {BATCH}, one thread, median of {args.repeats} interleaved rounds of {args.steps} steps; "
             f"one architecture per token-mixer family of `search_spaces/mixnas_bench.yaml`.", "",
             "| architecture | " + " | ".join(VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for name, row in per.items():
        base = row["fp32"]
        lines.append(f"| {name} | " + " | ".join(f"{1e3 * row[v]:.1f} ms" + ("" if v == "fp32" else
                                                                           f" ({base / row[v]:.2f}x)")
                                               for v in VARIANTS) + " |")
    totals = {v: sum(r[v] for r in per.values()) for v in VARIANTS}
    lines += ["| **sum** | " + " | ".join(f"**{1e3 * totals[v]:.1f} ms**" + ("" if v == "fp32" else
                                                                            f" ({totals['fp32'] / totals[v]:.2f}x)")
                                           for v in VARIANTS) + " |", ""]
    if comp:
        lines += [f"torch.compile (fp32) against one trial of the table's length ({trial_steps} steps):", "",
                  "| architecture | compile (first 2 steps, wall) | eager step | compiled step | trial eager | "
                  "trial compiled, compile included |", "|---|---:|---:|---:|---:|---:|"]
        for name, c in comp.items():
            lines.append(f"| {name} | {c['compile_s']:.1f} s | {1e3 * c['eager']:.1f} ms | {1e3 * c['compiled']:.1f} ms | "
                         f"{trial_steps * c['eager']:.1f} s | {c['compile_s'] + trial_steps * c['compiled']:.1f} s |")
        lines.append("")
    if thr:
        lines += [f"Threads: two architectures x {args.thread_steps} steps, wall clock (median of {args.thread_rounds}): "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in thr.items())
                  + f" (one two-thread job takes {thr['1 x 2 threads'] / thr['2 x 1 thread']:.2f}x the wall time of "
                  "two one-thread jobs; on this shared machine repeated runs of this check have differed by more than "
                  "10 %).", ""]
    lines.append("**Chosen for the build**: " + choice(totals, comp, thr, trial_steps) + "." + shipped_note())
    return "\n".join(lines)


def shipped_note() -> str:
    """What the shipped table was actually built with (its recipe), so that a run of this benchmark that
    chooses otherwise is visibly a different measurement, not the table's."""
    from bench.simulated_search import DEFAULT_TABLE as table
    from mixnas.errors import MixnasError
    from mixnas.tabular import Table

    try:
        t = Table(table)
        recipe, threads = t.build_train(), int(getattr(t.settings, "threads", 1))
    except (MixnasError, OSError):  # no table here: nothing to compare with
        return ""
    adamw = {"fused": "fused AdamW", "foreach": "foreach AdamW"}.get(str(recipe.get("adamw")), "the default AdamW")
    return (f" The shipped table `{table.name}` was built with {'bf16 autocast' if recipe.get('bf16') else 'fp32'} "
            f"and {adamw} (the trainer never compiles), {threads}-thread jobs (its recipe in `build.yaml`).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile-archs", type=int, default=2)
    ap.add_argument("--thread-steps", type=int, default=150)
    ap.add_argument("--thread-rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from bench._report import load_average, load_note

    cold_compile_cache()
    torch.set_num_threads(1)
    start = load_average()
    archs = pick_archs()
    per = variants_round(args, archs)
    comp = compile_costs(args, archs) if args.compile_archs else {}
    thr = threads_check(args, archs) if args.thread_rounds else {}
    trial_steps = 8 * 5400 // BATCH
    note = load_note(start, load_average(), "the per-step CPU times and their ratios hold, the thread comparison "
                     "(wall clock) does not")
    md = render(args, per, comp, thr, trial_steps, note)
    print(md)
    if not args.no_write:
        from bench._report import write_section

        write_section(TITLE, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
