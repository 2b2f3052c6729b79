"""How long each zero-cost proxy takes for a ~1M-parameter model on this CPU.

For each model: the proxies are computed ``--repeats`` times on one seeded batch of 64 Fashion-MNIST training
images (the ``mixnas proxy`` default); the first round is reported separately (it includes one-off costs such
as oneDNN primitive creation for new shapes), the rest as the median (min-max). ``macs`` goes through
``mixnas.complexity`` with its caches off, so it is a real fvcore count every time. The proxies' scores are
printed too, so the section shows what was computed. Writes the "Zero-cost proxy speed" section of
BENCHMARKS.md (``--no-write`` only prints it).

    PYTHONPATH=. python -m bench.proxy_speed
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from bench._report import load_average, load_note, machine

TITLE = "Zero-cost proxy speed"
ROOT = Path(__file__).resolve().parents[1]
MODELS = ["examples/strip_mlp_1m_fmnist.yaml", "examples/mixer_1m_fmnist.yaml"]
PROXIES = ("synflow", "naswot", "grad_norm", "snip", "params", "macs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="rounds per model, the first reported apart")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mixnas.complexity as cx
    from mixnas.data import load_dataset
    from mixnas.models import load_arch_file
    from mixnas.network import build_model
    from mixnas.proxies import proxy_batch, score_model

    real_complexity = cx.complexity
    cx.complexity = lambda arch, **kw: real_complexity(arch, cache=False)  # time real counts, not cache hits
    load_start = load_average()
    rows = []
    for ref in MODELS:
        arch = load_arch_file(ROOT / ref)
        data = load_dataset(args.dataset, None, arch.input.image_size, arch.input.in_channels)
        images, labels = proxy_batch(data, 64, 0)
        model = build_model(arch)
        rounds = []
        for _ in range(args.repeats):
            rounds.append(score_model(model, arch, images, labels, PROXIES))
        first, rest = rounds[0], rounds[1:]
        for p in PROXIES:
            times = [r.seconds[p] for r in rest]
            rows.append([arch.name, f"{sum(q.numel() for q in model.parameters()):,}", p, f"{first.scores[p]:.4g}",
                         f"{first.seconds[p]:.3f}", f"{statistics.median(times):.3f}",
                         f"{min(times):.3f}-{max(times):.3f}", "yes" if statistics.median(times) < 2.0 else "NO"])
        print(f"timed {arch.name}", file=sys.stderr)
    cx.complexity = real_complexity
    load_end = load_average()
    header = ["model", "params", "proxy", "score", "first s", "median s", "min-max s", "< 2 s"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(r) + " |" for r in rows])
    shared = load_note(load_start, load_end, "these times are upper bounds.")
    text = f"""Command: `PYTHONPATH=. python -m bench.proxy_speed --repeats {args.repeats}`. {machine()}.
{shared}

One seeded batch of 64 {args.dataset} training images, untrained weights (seed 0), CPU. "first" is the first
round (one-off costs included); the median and range are over the {args.repeats - 1} later rounds. `macs` is
a fresh fvcore count each time (caches off); fvcore's import is not included.

{table}
"""
    from bench._report import publish

    publish(TITLE, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
