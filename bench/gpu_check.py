"""GPU check: the GPU paths of mixnas, run once on real data, with their numbers in BENCHMARKS.md.

    PYTHONPATH=. python -m bench.gpu_check              # on a CUDA machine: about 3-5 minutes on one GPU
    PYTHONPATH=. python -m bench.gpu_check --no-write   # only prints the section
    PYTHONPATH=. python -m bench.gpu_check --device cpu --quick --no-write   # a dry run of the same code on a CPU

Three parts (``--parts``, default all three), each run through mixnas' own code path:

* ``throughput``: training images/s of the named model ``strip_mlp_t_star`` at 224x224 (3 input channels,
  10 classes), fp32 and bf16 autocast, through :func:`mixnas.train.train` with ``device`` and ``bf16``:
  the real trainer, loader and augmentation on the GPU. The data are real Fashion-MNIST images, loaded at
  their native 28x28 by :func:`mixnas.data.load_dataset` and resized to 224x224 (bilinear, the grey channel
  repeated to 3) by :func:`mixnas.data.fit_images` for a seeded subset of exactly ``steps x batch`` images,
  so that an epoch is ``steps`` steps. The first epoch is the warm-up; each further epoch is one timed
  round, its images/s the trainer's own (``EpochMetrics.images_per_s``: images over the epoch's training
  time, evaluation excluded). The trainer reads the loss, the gradient norm and the accuracy count on the
  host every step, and each read waits for the device, so every timed step ends synchronised.
* ``search``: a 4-trial search of ``search_spaces/strip_mlp.yaml`` on Fashion-MNIST at small fidelity
  through :class:`mixnas.search_driver.Search` and :func:`mixnas.ray_io.run_search`, with per-trial resources
  ``{"cpu": C, "gpu": 0.25}`` and concurrency 4, so all four trials share one GPU. Every trial records where
  it ran (:data:`mixnas.ray_io.PLACEMENT_KEYS`: its worker's start and last report times, the device it
  trained on and the GPU ids Ray gave it); the check verifies that all four overlapped in time (one common
  interval), trained on CUDA and shared one GPU.
* ``latency``: :func:`mixnas.latency.measure_latency` on the device (CUDA: synchronised before every clock
  read) for a few named models at 224x224, fp32 and bf16, batch 1 and 64.

Without a CUDA device (and without ``--device cpu``) it prints one line, ``no CUDA device: ...``, and exits
with status 2. A part that fails is reported in the section (and its traceback on stderr); the exit status
is 1 when any check failed, else 0. ``--device cpu --quick`` runs everything on the CPU at tiny sizes (the
search with no GPU share): a dry run of this script before a GPU machine is booked.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TITLE = "GPU check"
COMMAND = "PYTHONPATH=. python -m bench.gpu_check"
PARTS = ("throughput", "search", "latency")


@dataclass(frozen=True)
class Settings:
    """The sizes of one run (:data:`FULL` on a GPU, :data:`QUICK` for a dry run or the tests)."""

    model: str = "strip_mlp_t_star"
    dataset: str = "fashion-mnist"
    source_size: int = 28  # the dataset's native size: loaded as it is, then a subset resized
    image_size: int = 224
    in_channels: int = 3
    batch_size: int = 128
    steps: int = 20  # per epoch; the first epoch is the warm-up
    rounds: int = 3  # timed epochs
    val_images: int = 512
    latency_models: tuple[str, ...] = ("strip_mlp_t_star", "mixer_b16_224", "vit_b16_224")
    latency_batches: tuple[int, ...] = (1, 64)
    latency_image_size: int | None = None  # None: the models' own (224)
    latency_warmup: int = 10
    latency_repeats: int = 50
    space: str = "search_spaces/strip_mlp.yaml"
    trials: int = 4
    concurrency: int = 4
    gpu_per_trial: float = 0.25
    cpus_per_trial: float = 2.0  # at most; fewer where the machine has fewer cores per trial
    search_epochs: int = 3
    search_fraction: float = 0.25


FULL = Settings()
# A dry run: the 1M-parameter Strip-MLP of examples/ (a named model at 224 takes seconds per step on a CPU).
QUICK = Settings(model="examples/strip_mlp_1m_fmnist.yaml", image_size=32, batch_size=16, steps=2, rounds=1,
                 val_images=32, latency_models=("examples/strip_mlp_1m_fmnist.yaml",), latency_batches=(1, 2),
                 latency_image_size=32, latency_warmup=1, latency_repeats=3, search_epochs=1, search_fraction=0.02)


def model_ref(name: str) -> str:
    """A model name, or a YAML file of the repository (found from any working folder)."""
    return str(ROOT / name) if name.endswith((".yaml", ".yml")) and (ROOT / name).is_file() else name


# -- the device ----------------------------------------------------------------------------------------------


def cuda_problem(device: str) -> str | None:
    """Why ``device`` cannot be used, in a few words (None: it can; a CPU device always can)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        return f"{device!r} is not a device name (use cuda, cuda:N or cpu)"
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        return f"{device!r} is not a CUDA device (use cuda, cuda:N or cpu)"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU: "
                "torch.cuda.is_available() is False")
    count = torch.cuda.device_count()
    if (dev.index or 0) >= count:
        return f"{device} does not exist: torch sees {count} CUDA device(s)"
    return None


def sync(device: str) -> None:
    """Wait for the device's queued work (nothing to wait for on a CPU)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gpu_line(device: str) -> str:
    """The GPU and the precision settings that decide fp32 speed (empty on a CPU)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return ""
    p = torch.cuda.get_device_properties(dev)
    return (f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; fp32 matmul precision "
            f"'{torch.get_float32_matmul_precision()}' (TF32 for matmuls "
            f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, for cuDNN convolutions "
            f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'}).")


class PeakMemory:
    """The device's peak allocated memory over a block, in GiB (None on a CPU)."""

    def __init__(self, device: str):
        import torch

        self.dev = torch.device(device)
        self.gib: float | None = None

    def __enter__(self) -> PeakMemory:
        import torch

        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.dev)
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.dev.type == "cuda":
            self.gib = torch.cuda.max_memory_allocated(self.dev) / 2**30


# -- training throughput ----------------------------------------------------------------------------------------


def fit_subset(data: Any, image_size: int, in_channels: int, n_train: int, n_val: int, seed: int = 0) -> Any:
    """``data`` (a :class:`mixnas.data.DataSplits`) cut to a seeded ``n_train`` training images (repeated
    when the split is smaller) and ``n_val`` validation images, fitted to ``image_size`` and ``in_channels``
    by :func:`mixnas.data.fit_images`, with the normalisation measured on the new training images."""
    import torch

    from mixnas.data import Split, fit_images
    from mixnas.data.base import channel_stats

    gen = torch.Generator().manual_seed(seed)

    def cut(split: Split, n: int, part: str) -> Split:
        order = torch.randperm(len(split), generator=gen)
        idx = order.repeat(-(-n // len(split)))[:n]
        images = fit_images(split.images[idx], image_size, in_channels, what=f"{data.name} {part} images")
        return Split(images, split.labels[idx])

    train = cut(data.train, n_train, "train")
    mean, std = channel_stats(train.images)
    return dataclasses.replace(data, train=train, val=cut(data.val, n_val, "val"), test=None, mean=mean, std=std)


@dataclass(frozen=True)
class Throughput:
    """Training images/s of one precision: the median and each timed epoch, after one warm-up epoch."""

    precision: str
    status: str
    reason: str
    images_per_s: float | None  # median over the timed epochs
    per_epoch: tuple[float, ...]
    warmup_images_per_s: float | None
    steps: int
    batch_size: int
    peak_gib: float | None


def train_throughput(arch: Any, data: Any, *, device: str, bf16: bool, steps: int, rounds: int,
                     batch_size: int) -> Throughput:
    """Train ``arch`` on ``data`` with :func:`mixnas.train.train` for one warm-up epoch and ``rounds`` timed
    epochs of ``steps`` steps (``data.train`` must hold ``steps x batch_size`` images)."""
    from mixnas.train import TrainConfig, train

    if len(data.train) != steps * batch_size:
        raise ValueError(f"the training split holds {len(data.train)} images, not steps x batch = "
                         f"{steps * batch_size}")
    cfg = TrainConfig(epochs=1 + rounds, batch_size=batch_size, bf16=bf16, val_fraction=data.val_fraction,
                      split_seed=data.seed, eval_batch_size=batch_size)
    precision = "bf16" if bf16 else "fp32"
    sync(device)
    with PeakMemory(device) as peak:
        result = train(arch, data, cfg, device=device, progress=False)
    sync(device)
    curve = result.curve
    if curve and curve[0].steps != steps:
        raise AssertionError(f"an epoch took {curve[0].steps} steps, not {steps}")
    timed = tuple(m.images_per_s for m in curve[1:] if m.partial >= 1.0)
    ok = result.status == "completed" and len(timed) == rounds
    return Throughput(precision, result.status, result.reason, statistics.median(timed) if ok else None, timed,
                      curve[0].images_per_s if curve else None, steps, batch_size, peak.gib)


def throughput_part(s: Settings, device: str, data_dir: str | None) -> tuple[str, list[tuple[str, bool]]]:
    import torch

    from mixnas.complexity import complexity
    from mixnas.data import load_dataset
    from mixnas.models import resolve_arch

    base = load_dataset(s.dataset, data_dir, s.source_size, None, 0.1, 0)
    data = fit_subset(base, s.image_size, s.in_channels, s.steps * s.batch_size, s.val_images)
    del base
    arch = resolve_arch(model_ref(s.model), image_size=s.image_size, in_channels=s.in_channels,
                        num_classes=data.num_classes)
    cost = complexity(arch)
    results = []
    for bf16 in (False, True):
        print(f"throughput: {s.model} {'bf16' if bf16 else 'fp32'} on {device} ...", file=sys.stderr, flush=True)
        try:
            results.append(train_throughput(arch, data, device=device, bf16=bf16, steps=s.steps, rounds=s.rounds,
                                            batch_size=s.batch_size))
        except Exception as err:  # noqa: BLE001 - one precision failing must not hide the other's numbers
            traceback.print_exc()
            results.append(Throughput("bf16" if bf16 else "fp32", "failed", failure(err), None, (), None, s.steps,
                                      s.batch_size, None))
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return render_throughput(s, cost.params, cost.macs, results, device)


def render_throughput(s: Settings, params: int, macs: int, results: Sequence[Throughput],
                      device: str) -> tuple[str, list[tuple[str, bool]]]:
    rows = []
    for r in results:
        rate = r.images_per_s
        rows.append([r.precision, r.status, _num(rate), ", ".join(f"{v:.0f}" for v in r.per_epoch) or "—",
                     _num(r.warmup_images_per_s), f"{rate * 6 * macs / 1e12:.1f}" if rate else "—",
                     f"{r.peak_gib:.1f}" if r.peak_gib is not None else "—"])
    by = {r.precision: r.images_per_s for r in results}
    ratio = (f" bf16 / fp32: **{by['bf16'] / by['fp32']:.2f}x**." if by.get("bf16") and by.get("fp32") else "")
    text = (f"`{s.model}` ({params / 1e6:.2f}M parameters, {macs / 1e9:.2f} G multiply-adds per image at "
            f"{s.image_size}x{s.image_size}, {s.in_channels} input channels, 10 classes) trained by "
            f"`mixnas.train.train(..., device='{device}')`, fp32 and `bf16=True` (autocast), batch {s.batch_size}, "
            f"AdamW, the trainer's augmentation on the device. Data: real {s.dataset} images, a seeded subset of "
            f"{s.steps * s.batch_size} resized from {s.source_size}x{s.source_size} to {s.image_size}x"
            f"{s.image_size} (bilinear, grey repeated to {s.in_channels} channels). One warm-up epoch of "
            f"{s.steps} steps, then {s.rounds} timed epoch{'s' if s.rounds != 1 else ''} of {s.steps} steps; "
            "images/s is the trainer's own per epoch (training time only; each step ends with host reads of the "
            "loss, the gradient norm and the accuracy, which wait for the device). "
            f"TFLOP/s = images/s x 6 x multiply-adds.{ratio}\n\n"
            + table(["precision", "status", "images/s (median)", "timed epochs", "warm-up epoch", "TFLOP/s",
                     "peak memory GiB"], rows))
    checks = [(f"training {s.model} in {r.precision} on {device}: {r.status}"
               + (f" ({r.reason})" if r.status != "completed" else ""), r.images_per_s is not None) for r in results]
    return text, checks


# -- a search whose trials share one GPU ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRow:
    """One trained trial of the search, as its record says."""

    number: int
    state: str
    device: str
    gpu_ids: str
    start: float | None  # wall-clock seconds (the worker's)
    end: float | None
    top1: float | None
    fidelity: int


def trial_rows(trials: Sequence[Any]) -> list[TrialRow]:
    """The trained trials of a study (not re-used repeats, not infeasible or invalid candidates), in order."""
    rows = []
    for t in trials:
        a = t.user_attrs
        if t.state.name == "RUNNING" or "duplicate_of" in a or a.get("status") in ("infeasible", "invalid"):
            continue
        top1 = (a.get("objectives") or {}).get("top1")
        rows.append(TrialRow(t.number, t.state.name, str(a.get("device", "")), str(a.get("gpu_ids", "")),
                             a.get("worker_start"), a.get("worker_time"), top1, int(a.get("fidelity", 0) or 0)))
    return sorted(rows, key=lambda r: r.number)


def common_overlap(spans: Sequence[tuple[float, float]]) -> float:
    """Seconds during which every span ran at once (<= 0: there was no such moment)."""
    if not spans:
        return 0.0
    return min(end for _, end in spans) - max(start for start, _ in spans)


def max_concurrency(spans: Sequence[tuple[float, float]]) -> int:
    """The most spans running at one moment (a span ending as another starts does not overlap it)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = best = 0
    for _, delta in events:  # at equal times the end (-1) sorts first
        running += delta
        best = max(best, running)
    return best


def search_checks(rows: Sequence[TrialRow], trials: int, device: str) -> list[tuple[str, bool]]:
    """What the search must show: every trial trained, all at once, on the expected device, sharing one GPU."""
    import torch

    want = torch.device(device).type
    spans = [(r.start, r.end) for r in rows if r.start is not None and r.end is not None]
    common = common_overlap(spans) if len(spans) == len(rows) else -math.inf
    devices = sorted({r.device for r in rows})
    gpus = sorted({r.gpu_ids for r in rows})
    checks = [
        (f"{len(rows)} of {trials} trials trained, {sum(r.state == 'COMPLETE' for r in rows)} COMPLETE",
         len(rows) == trials and all(r.state == "COMPLETE" for r in rows)),
        (f"all {len(rows)} trials ran at once: "
         + (f"{len(rows) - len(spans)} trial(s) recorded no start and end" if len(spans) < len(rows) else
            f"for {common:.1f} s (one common interval)" if common > 0 else "no common interval")
         + f", at most {max_concurrency(spans)} at a time", len(rows) == trials and common > 0),
        (f"every trial trained on {want}: devices recorded {', '.join(d or '(none)' for d in devices) or '(none)'}",
         bool(rows) and devices == [want]),
    ]
    if want == "cuda":
        checks.append((f"the trials shared one GPU: Ray GPU ids {', '.join(g or '(none)' for g in gpus)}",
                       len(gpus) == 1 and gpus[0] != "" and "," not in gpus[0]))
    return checks


def search_settings(s: Settings, device: str, out: str, data_dir: str | None, cpus: int) -> Any:
    """The :class:`mixnas.search_driver.SearchSettings` of the check: ``trials`` trials at once, each with a GPU share
    (none on a CPU) and at most ``cpus_per_trial`` cores, no early stopping (every trial runs its epochs)."""
    import torch

    from mixnas.search_driver import SearchSettings

    gpu = s.gpu_per_trial if torch.device(device).type == "cuda" else 0.0
    cpu = max(0.25, min(s.cpus_per_trial, cpus / s.concurrency))
    return SearchSettings(space=str(ROOT / s.space), out=out, data_dir=data_dir, trials=s.trials,
                          scheduler="none", max_epochs=s.search_epochs, concurrency=s.concurrency,
                          resources={"cpu": cpu, "gpu": gpu}, train={"fraction": s.search_fraction})


def ray_runner(search: Any) -> None:
    """Run the search through Ray Tune (:func:`mixnas.ray_io.run_search`), after checking that Ray sees
    enough GPUs for all the trials at once (else Tune would wait for them forever)."""
    import ray

    from mixnas.ray_io import init_ray, run_search

    s = search.settings
    started = init_ray(s.address)
    try:
        need = s.resources.get("gpu", 0.0) * s.concurrency
        have = ray.cluster_resources().get("GPU", 0.0)
        if have < need:
            raise RuntimeError(f"Ray sees {have:g} GPU(s); {s.concurrency} trials at gpu={s.resources['gpu']:g} "
                               f"need {need:g}")
        run_search(search)
    finally:
        if started:
            ray.shutdown()


def search_part(s: Settings, device: str, out: str, data_dir: str | None, cpus: int,
                runner: Callable[[Any], None] = ray_runner) -> tuple[str, list[tuple[str, bool]]]:
    from mixnas.search_driver import Search

    settings = search_settings(s, device, out, data_dir, cpus)
    search = Search(settings, log=lambda line: print(f"search: {line}", file=sys.stderr, flush=True),
                    check_data=True)
    started = time.perf_counter()
    runner(search)
    wall = time.perf_counter() - started
    rows = trial_rows(search.trials())
    return render_search(s, settings, rows, wall, device)


def render_search(s: Settings, settings: Any, rows: Sequence[TrialRow], wall: float,
                  device: str) -> tuple[str, list[tuple[str, bool]]]:
    t0 = min((r.start for r in rows if r.start is not None), default=0.0)

    def rel(v: float | None) -> str:
        return f"{v - t0:.1f}" if v is not None else "—"

    lines = [[str(r.number), r.state, r.device or "—", r.gpu_ids or "—", rel(r.start), rel(r.end),
              f"{r.end - r.start:.1f}" if r.start is not None and r.end is not None else "—", str(r.fidelity),
              _num(r.top1, "{:.2f}")] for r in rows]
    res = settings.resources
    text = (f"`mixnas.search_driver.Search` + `mixnas.ray_io.run_search` on `{s.space}` (Fashion-MNIST 32x32): "
            f"{settings.trials} trials, concurrency {settings.concurrency}, resources per trial "
            f"`{{\"cpu\": {res['cpu']:g}, \"gpu\": {res['gpu']:g}}}`, scheduler `none`, {settings.max_epochs} "
            f"epoch(s) on {settings.train['fraction']:.0%} of the training split. Wall time of the search (Ray start "
            f"included): {wall:.1f} s. Times are each trial's worker start and last report, in seconds from the "
            "first start; the device and Ray's GPU ids are what each trial recorded.\n\n"
            + table(["trial", "state", "device", "Ray GPU ids", "start s", "end s", "duration s", "epochs",
                     "val top-1 %"], lines))
    return text, search_checks(rows, settings.trials, device)


# -- latency ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyRow:
    model: str
    image_size: int
    batch_size: int
    dtype: str
    median_ms: float
    q1_ms: float
    q3_ms: float
    runs: int


def latency_rows(models: Sequence[str], batches: Sequence[int], dtypes: Sequence[str], device: str,
                 image_size: int | None, warmup: int, repeats: int) -> list[LatencyRow]:
    """:func:`mixnas.latency.measure_latency` of each named model (built once) at each batch size and dtype."""
    import torch

    from mixnas.latency import measure_latency
    from mixnas.models import resolve_arch
    from mixnas.network import build_model

    rows = []
    for name in models:
        arch = resolve_arch(model_ref(name), image_size=image_size)
        model = build_model(arch)
        for dtype in dtypes:
            for b in batches:
                print(f"latency: {name} {dtype} batch {b} on {device} ...", file=sys.stderr, flush=True)
                lat = measure_latency(model, batch_size=b, device=device, dtype=dtype, warmup=warmup, repeats=repeats)
                rows.append(LatencyRow(name, arch.input.image_size, b, dtype, lat.median_ms, lat.q1_ms, lat.q3_ms,
                                       lat.runs))
        del model
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return rows


def latency_part(s: Settings, device: str) -> tuple[str, list[tuple[str, bool]]]:
    rows = latency_rows(s.latency_models, s.latency_batches, ("float32", "bfloat16"), device, s.latency_image_size,
                        s.latency_warmup, s.latency_repeats)
    return render_latency(s, rows, device)


def render_latency(s: Settings, rows: Sequence[LatencyRow], device: str) -> tuple[str, list[tuple[str, bool]]]:
    lines = [[r.model, f"{r.image_size}", str(r.batch_size), "bf16 autocast" if r.dtype == "bfloat16" else "fp32",
              f"{r.median_ms:.3f}", f"{r.q1_ms:.3f}-{r.q3_ms:.3f}", f"{r.batch_size / r.median_ms * 1e3:.0f}"]
             for r in rows]
    text = (f"`mixnas.latency.measure_latency(model, device='{device}', batch_size=B, dtype=D)`: inference mode, "
            f"{s.latency_warmup} warm-up run{'s' if s.latency_warmup != 1 else ''}, then the median of "
            f"{s.latency_repeats} timed runs, the device synchronised before every clock read; each model with its "
            "registered input (the named models: 3x224x224, 1000 classes)"
            + (f", here resized to {s.latency_image_size}x{s.latency_image_size}" if s.latency_image_size else "")
            + ".\n\n"
            + table(["model", "image", "batch", "precision", "median ms", "IQR ms", "images/s"], lines))
    ok = bool(rows) and all(math.isfinite(r.median_ms) and r.median_ms > 0 for r in rows)
    return text, [(f"latency measured on {device} for {len(rows)} settings", ok)]


# -- the section --------------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def failure(err: BaseException, limit: int = 300) -> str:
    """An exception in one line of at most ``limit`` characters (its traceback goes to stderr)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".replace("`", "'")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _num(v: float | None, fmt: str = "{:.0f}") -> str:
    return fmt.format(v) if v is not None and math.isfinite(v) else "—"


def render(command: str, seconds: float, notes: Sequence[str], parts: Sequence[tuple[str, str]],
           checks: Sequence[tuple[str, bool]]) -> str:
    """The BENCHMARKS.md section: the command and its run time, the machine, each part, then the checks."""
    head = f"Command: `{command}` ({seconds:.0f} s). " + " ".join(n for n in notes if n)
    body = "\n\n".join(f"### {name}\n\n{text}" for name, text in parts)
    verdict = "\n".join(f"- [{'x' if ok else ' '}] {what}" for what, ok in checks)
    return f"{head}\n\n{body}\n\nChecks:\n\n{verdict}\n"


HEADINGS = {"throughput": "Training throughput", "search": "A search whose trials share one GPU",
            "latency": "Latency"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda; cpu: a dry run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a dry run; what the tests run)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (default all)")
    parser.add_argument("--data-dir", help="where Fashion-MNIST is (default: mixnas' usual folders)")
    parser.add_argument("--out", help="the search's run folder (default runs/gpu-check-<time>)")
    parser.add_argument("--steps", type=int, help="training steps per epoch for the throughput")
    parser.add_argument("--batch-size", type=int, help="batch size for the throughput")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    parser.add_argument("--benchmarks", default=None, help=argparse.SUPPRESS)  # another file (the tests)
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        parser.error(f"--parts: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(PARTS)}")
    problem = cuda_problem(args.device)
    if problem is not None:
        print(f"no CUDA device: {problem}; run it on a GPU machine, or with --device cpu for a dry run",
              file=sys.stderr)
        return 2

    import os

    import torch

    from bench._report import load_average, load_note, machine, write_section

    s = QUICK if args.quick else FULL
    s = dataclasses.replace(s, **{k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size))
                                  if v is not None})
    device = args.device
    out = args.out or str(ROOT / "runs" / time.strftime("gpu-check-%Y%m%d-%H%M%S"))
    load_start, started = load_average(), time.perf_counter()
    runners: dict[str, Callable[[], tuple[str, list[tuple[str, bool]]]]] = {
        "throughput": lambda: throughput_part(s, device, args.data_dir),
        "search": lambda: search_part(s, device, out, args.data_dir, os.cpu_count() or 1),
        "latency": lambda: latency_part(s, device),
    }
    sections, checks = [], []
    for part in parts:
        try:
            text, part_checks = runners[part]()
        except Exception as err:  # noqa: BLE001 - one failing GPU path must not hide the others' numbers
            traceback.print_exc()
            text, part_checks = f"**Failed**: `{failure(err)}`", [(f"the {part} part ran", False)]
        sections.append((HEADINGS[part], text))
        checks.extend(part_checks)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    seconds = time.perf_counter() - started
    command = COMMAND + "".join(" " + shlex.quote(a) for a in argv if a != "--no-write")
    notes = [gpu_line(device), f"{machine()}.",
             load_note(load_start, load_average(), "the CPU-side numbers (search wall time above all) are slower "
                       "than on an idle machine.")]
    text = render(command, seconds, notes, sections, checks)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(TITLE, text, args.benchmarks)}", file=sys.stderr)
    failed = [what for what, ok in checks if not ok]
    if failed:
        print(f"{len(failed)} check(s) failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
