"""How long ``mixnas.complexity.complexity()`` takes to count a model from scratch (no cache).

For every named model: one first call, then ``--repeats`` more calls with ``cache=False``, reported as the
median (min-max); plus a memory-cache hit and a disk-cache hit for the largest model. Writes the
"complexity() speed" section of BENCHMARKS.md (``--no-write`` only prints it).

    PYTHONPATH=. python -m bench.complexity_speed
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata

import mixnas
from bench._report import load_average, machine
from mixnas.registry import named_models

TITLE = "complexity() speed"


def load_average_text() -> str:
    return " / ".join(f"{x:.2f}" for x in load_average())


def machine_text(load_at_start: str) -> str:
    return (f"{machine()} (counting itself traces with 1 thread); fvcore {metadata.version('fvcore')}, "
            f"{platform.system()}; load average (1/5/15 min) {load_at_start} at the start, {load_average_text()} at "
            "the end (the machine is shared)")


def g(n: int | None, unit: float, digits: int) -> str:
    return "—" if n is None else f"{n / unit:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="cold calls per model after the first (default 5)")
    parser.add_argument("--models", nargs="*", help="named models (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mixnas-bench-") as cache:
        os.environ["MIXNAS_CACHE"] = cache  # never the user's cache
        md = measure(args, argv)
    print(md)
    if not args.no_write:
        from bench._report import write_section

        print("wrote", write_section(TITLE, md))
    return 0


def measure(args: argparse.Namespace, argv: list[str] | None) -> str:
    load_at_start = load_average_text()

    start = time.perf_counter()
    import mixnas.complexity as cx  # timed: this is where fvcore is imported
    import_s = time.perf_counter() - start

    models = named_models()
    names = args.models or list(models)
    rows, medians, params = [], {}, {}
    for i, name in enumerate(names):
        arch = models[name].make()
        start = time.perf_counter()
        result = cx.complexity(arch, cache=False)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cx.complexity(arch, cache=False)
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
        params[name] = result.params
        rep = models[name].reported
        rows.append(f"| `{name}` | {g(result.params, 1e6, 2)} | {g(rep.params, 1e6, 2)} | {g(result.macs, 1e9, 3)} "
                    f"| {g(rep.macs, 1e9, 1)} | {first:.2f}{' (1st in process)' if i == 0 else ''} "
                    f"| {medians[name]:.2f} ({min(times):.2f}-{max(times):.2f}) |")
        print(rows[-1], flush=True)

    largest = max(names, key=params.__getitem__)
    arch = models[largest].make()
    cx.clear_memory_cache()
    cx.complexity(arch)  # fills both caches
    start = time.perf_counter()
    cx.complexity(arch)
    memory_s = time.perf_counter() - start
    cx.clear_memory_cache()
    start = time.perf_counter()
    cx.complexity(arch)
    disk_s = time.perf_counter() - start

    command = " ".join(["PYTHONPATH=. python -m bench.complexity_speed", *(sys.argv[1:] if argv is None else argv)])
    return "\n".join([
        f"Command: `{command}` (mixnas {mixnas.__version__}).",
        "",
        f"Machine: {machine_text(load_at_start)}.",
        "",
        f"Wall-clock seconds for `complexity(arch, cache=False)` at batch size 1 and 224x224: the first call, then "
        f"the median (min-max) of {args.repeats} further calls. MACs follow `{cx.MAC_CONVENTION}`; "
        "\"reported\" is what the model's registry entry cites (timm / the papers; — where none is published).",
        "",
        "| model | params (M) | reported params (M) | GMACs | reported GMACs | first call (s) | median (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"`import mixnas.complexity` after torch is loaded (this imports fvcore): {import_s:.2f} s. Cache hits for `{largest}`: memory "
        f"{memory_s * 1e3:.3f} ms, disk {disk_s * 1e3:.1f} ms.",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
