"""Training throughput of mixnas-built models against a textbook MLP-Mixer, fp32 and bf16, and the share
of the machine's measured matmul peak that it reaches.

What is timed is the proxy trainer's step (``mixnas.train``): forward under autocast (bf16) or not (fp32),
label-smoothed cross-entropy, backward, gradient clipping and an AdamW step, at batch size 128 on one
fixed random batch. The reference is an MLP-Mixer written here the textbook way (``nn.Linear`` layers and
two transposes per token-mixing MLP, as in the paper's pseudo-code and timm), with exactly the same
configuration and parameter count. The variants run in the same process, interleaved (the order rotates every
round), and each number is the median of ``--repeats`` rounds of ``--steps`` steps after warm-up.

Achieved FLOP/s = images/s x 6 x forward MACs per image (fvcore, ``mixnas.complexity``): 2 FLOPs per
multiply-add, and the usual estimate that the backward pass costs twice the forward one. The peak is the
median ``torch.mm`` throughput on 2048 x 2048 matrices measured in the same process (fp32 and bf16).

The loader check times ``BatchLoader`` (gather + random crop + flip + normalise) on Fashion-MNIST-shaped
data against the training step, to show that data never starve the model.

    PYTHONPATH=. python -m bench.train_throughput            # writes the section of BENCHMARKS.md
    PYTHONPATH=. python -m bench.train_throughput --no-write # only prints it
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.network import build_model
from mixnas.train import param_groups

TITLE = "Training throughput"
BATCH = 128


# -- the textbook reference ------------------------------------------------------------------------------------


class RefMixerBlock(nn.Module):
    """MLP-Mixer block as in the paper's pseudo-code: transpose, token MLP, transpose back; channel MLP."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class RefMixer(nn.Module):
    def __init__(self, image_size: int, in_channels: int, num_classes: int, patch: int, dim: int, depth: int,
                 token_hidden: int, channel_hidden: int):
        super().__init__()
        tokens = (image_size // patch) ** 2
        self.stem = nn.Conv2d(in_channels, dim, patch, patch)
        self.blocks = nn.Sequential(*[RefMixerBlock(tokens, dim, token_hidden, channel_hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


@dataclass(frozen=True)
class MixerShape:
    label: str
    patch: int
    dim: int
    depth: int
    token_hidden: int
    channel_hidden: int
    image_size: int = 32
    in_channels: int = 1
    num_classes: int = 10

    def arch(self) -> ArchConfig:
        stage = StageSpec(depth=self.depth, dim=self.dim,
                          token_mixer=MixerSpec.of("mixer", token_hidden_dim=self.token_hidden),
                          channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=self.channel_hidden))
        return ArchConfig(stages=(stage,), input=InputSpec(self.image_size, self.in_channels, self.num_classes),
                          stem=StemSpec(patch_size=self.patch, dim=self.dim), head=HeadSpec(), name=self.label)

    def reference(self) -> nn.Module:
        return RefMixer(self.image_size, self.in_channels, self.num_classes, self.patch, self.dim, self.depth,
                        self.token_hidden, self.channel_hidden)


MIXERS = [
    MixerShape("Mixer small (32x32, patch 4, C 128, depth 6)", 4, 128, 6, 64, 512),
    MixerShape("Mixer mid (32x32, patch 4, C 256, depth 8)", 4, 256, 8, 128, 1024),
]


# -- measuring ---------------------------------------------------------------------------------------------------


def make_step(model: nn.Module, bf16: bool, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One step of the proxy trainer's loop (see mixnas.train.train), on a fixed batch."""
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
        float(loss.detach())  # the trainer reads the loss every step (divergence check)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    return step


PEAK_SAMPLES: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}


def sample_peaks() -> None:
    """One ``torch.mm`` peak sample per precision, taken between rounds so it sees the same machine state."""
    for dtype in PEAK_SAMPLES:
        PEAK_SAMPLES[dtype].append(mm_peak(dtype, runs=1, inner=3))


def timed_rounds(variants: dict[str, Callable[[], None]], steps: int, repeats: int, warmup: int = 3) -> dict:
    """Median images/s of each variant over ``repeats`` interleaved rounds (order rotated every round)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    names = list(variants)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        sample_peaks()
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            start = time.perf_counter()
            for _ in range(steps):
                variants[n]()
            samples[n].append(steps * BATCH / (time.perf_counter() - start))
    return {n: (statistics.median(v), min(v), max(v)) for n, v in samples.items()}


def mm_peak(dtype: torch.dtype, size: int = 2048, runs: int = 7, inner: int = 4) -> float:
    """Median FLOP/s of ``torch.mm`` on ``size`` x ``size`` matrices."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        rates.append(inner * 2 * size ** 3 / (time.perf_counter() - start))
    return statistics.median(rates)


def loader_check(steps_ms: float) -> str:
    from mixnas.data.base import Split
    from mixnas.data.loader import Augment, BatchLoader

    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (54_000, 1, 32, 32), dtype=torch.uint8, generator=gen),
                  torch.randint(0, 10, (54_000,), generator=gen))
    loader = BatchLoader(split, BATCH, mean=(0.22,), std=(0.33,), shuffle=True, augment=Augment(2, True), seed=0,
                         drop_last=True)
    start = time.perf_counter()
    for _ in loader:
        pass
    per_batch = (time.perf_counter() - start) / len(loader) * 1e3
    return (f"Loader: one augmented batch of {BATCH} (gather + random crop with padding 2 + flip + normalise, "
            f"1x32x32 uint8 -> float32) takes {per_batch:.2f} ms, {100 * per_batch / steps_ms:.1f} % of a "
            f"{steps_ms:.0f} ms fp32 training step of the small Mixer: the loader is not the bottleneck.")


def loader_profile() -> str:
    """cProfile a short real run of ``mixnas.train.train`` and report the share spent producing batches."""
    import cProfile
    import pstats

    from mixnas.data import load_dataset
    from mixnas.train import TrainConfig, train

    arch = MIXERS[0].arch()
    cfg = TrainConfig(epochs=1, fraction=0.05)
    try:
        data = load_dataset("fashion-mnist", None, 32, 1, cfg.val_fraction, cfg.split_seed)
    except Exception as err:  # no Fashion-MNIST here: say so instead of failing the whole benchmark
        return f"Loader profile skipped: {err}"
    prof = cProfile.Profile()
    prof.enable()
    result = train(arch, data, cfg, progress=False)
    prof.disable()
    stats = pstats.Stats(prof).stats
    loader = sum(v[3] for k, v in stats.items() if k[0].endswith("loader.py") and k[2] == "__iter__")
    total = result.curve[0].train_time_s
    return (f"Profile (cProfile of `mixnas.train.train`, one epoch over 5 % of Fashion-MNIST, small Mixer, fp32): "
            f"producing batches (`BatchLoader.__iter__`: gather, crop, flip, normalise) took {loader:.2f} s of "
            f"{total:.1f} s of training, {100 * loader / total:.1f} %.")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def strip_shapes() -> list[tuple[str, ArchConfig]]:
    """Small Strip-MLPs to time, when the Strip family is available (from the bench's YAML file)."""
    from mixnas.registry import mixer_families

    if "strip" not in mixer_families("token"):
        return []
    from mixnas.models import load_arch_file

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "strip_mlp_1m_fmnist.yaml")
    if not os.path.isfile(path):
        return []
    arch = load_arch_file(path)
    return [(f"Strip-MLP small ({arch.name}, 32x32)", arch)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per variant (default 5)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round (default 4)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mixnas.complexity import complexity
    from mixnas.train import tune_cpu_allocator

    tuned = tune_cpu_allocator()  # as mixnas.train.train does; the reference runs in this process too

    load_start = os.getloadavg()
    started = time.perf_counter()
    for _ in range(3):
        sample_peaks()
    gen = torch.Generator().manual_seed(0)
    measured = []  # (label, params, macs, {(impl, bf16): img/s}); shares are computed once every peak sample is in
    for shape in MIXERS:
        arch = shape.arch()
        x = torch.randn(BATCH, shape.in_channels, shape.image_size, shape.image_size, generator=gen)
        y = torch.randint(0, shape.num_classes, (BATCH,), generator=gen)
        ours, ref = build_model(arch), shape.reference()
        n_ours = sum(p.numel() for p in ours.parameters())
        n_ref = sum(p.numel() for p in ref.parameters())
        if n_ours != n_ref:
            raise SystemExit(f"{shape.label}: the reference has {n_ref} parameters, mixnas {n_ours}")
        variants = {}
        for bf16 in (False, True):
            variants[("mixnas", bf16)] = make_step(ours, bf16, x, y)
            variants[("reference", bf16)] = make_step(ref, bf16, x, y)
        print(f"timing {shape.label} ...", file=sys.stderr)
        res = timed_rounds(variants, args.steps, args.repeats)
        measured.append((shape.label, n_ours, complexity(arch).macs, {k: v[0] for k, v in res.items()}))
    for label, arch in strip_shapes():
        x = torch.randn(BATCH, arch.input.in_channels, arch.input.image_size, arch.input.image_size, generator=gen)
        y = torch.randint(0, arch.input.num_classes, (BATCH,), generator=gen)
        model = build_model(arch)
        print(f"timing {label} ...", file=sys.stderr)
        res = timed_rounds({("mixnas", bf16): make_step(model, bf16, x, y) for bf16 in (False, True)}, args.steps,
                           args.repeats)
        measured.append((label, sum(p.numel() for p in model.parameters()), complexity(arch).macs,
                         {k: v[0] for k, v in res.items()}))
    sample_peaks()
    peak32, peak16 = max(PEAK_SAMPLES[torch.float32]), max(PEAK_SAMPLES[torch.bfloat16])
    med32, med16 = statistics.median(PEAK_SAMPLES[torch.float32]), statistics.median(PEAK_SAMPLES[torch.bfloat16])
    rows, notes = [], []
    checks: list[tuple[str, bool]] = []
    for label, n_params, macs, res in measured:
        m32, m16 = res[("mixnas", False)], res[("mixnas", True)]
        has_ref = ("reference", False) in res
        for bf16 in (False, True):
            m = res[("mixnas", bf16)]
            r = res.get(("reference", bf16))
            flops = m * 6 * macs
            rows.append([label, f"{n_params / 1e6:.2f}M", f"{macs / 1e6:.1f}M", "bf16" if bf16 else "fp32",
                         f"{m:.0f}", f"{r:.0f}" if r else "—", f"{m / r:.2f}x" if r else "—",
                         f"{m16 / m32:.2f}x" if bf16 else "", f"{flops / 1e9:.1f}",
                         f"{100 * flops / (peak16 if bf16 else peak32):.1f} %"])
        if has_ref:
            r32 = res[("reference", False)]
            checks.append((f"{label}: mixnas >= 1.0x the reference in fp32 ({m32 / r32:.2f}x)", m32 >= r32))
        checks.append((f"{label}: bf16 >= 1.8x fp32 ({m16 / m32:.2f}x)", m16 >= 1.8 * m32))
        if "mid" in label:
            share = m32 * 6 * macs / peak32
            checks.append((f"{label}: fp32 reaches >= 50 % of the fp32 mm peak ({100 * share:.0f} %)", share >= 0.5))
    small_fp32_ms = BATCH / measured[0][3][("mixnas", False)] * 1e3
    notes.append(loader_check(small_fp32_ms))
    notes.append(loader_profile())
    load_end = os.getloadavg()
    threads = torch.get_num_threads()
    busy = max(load_start[0], load_end[0]) > 0.5
    header = ["model", "params", "MACs/img", "precision", "mixnas img/s", "reference img/s", "mixnas/ref",
              "bf16/fp32", "achieved GFLOP/s", "of the mm peak"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(r) + " |" for r in rows])
    shared = (f"**Taken on a shared machine**: other processes were running (load average {load_start[0]:.2f} at the "
              f"start, {load_end[0]:.2f} at the end, on {os.cpu_count()} cores), so absolute numbers are lower and "
              "noisier than on an idle machine; the ratios come from interleaved runs and are the more reliable."
              if busy else f"Load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end.")
    text = f"""Command: `PYTHONPATH=. python -m bench.train_throughput --repeats {args.repeats} --steps {args.steps}`
({time.perf_counter() - started:.0f} s). CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__},
{threads} intra-op threads, Python {platform.python_version()};
{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.

{shared}

Training step = forward (bf16: `torch.autocast("cpu", dtype=torch.bfloat16)`), label-smoothed cross-entropy,
backward, gradient clipping, AdamW step; batch {BATCH}, 1x32x32 inputs, 10 classes; glibc allocator tuned as in
`mixnas.train` ({'yes' if tuned else 'no: not glibc'}; both implementations run in this process). Median of {args.repeats}
interleaved rounds of {args.steps} steps. The reference is a textbook MLP-Mixer (`nn.Linear` + transposes) of the
same configuration and parameter count. Achieved FLOP/s = img/s x 6 x forward MACs (fvcore), as a share of
the `torch.mm` 2048² peak of the same precision, sampled before every round (the best sample is the peak;
{len(PEAK_SAMPLES[torch.float32])} samples): fp32 {peak32 / 1e9:.0f} GFLOP/s (median {med32 / 1e9:.0f}),
bf16 {peak16 / 1e9:.0f} GFLOP/s (median {med16 / 1e9:.0f}).

{table}

Targets:
""" + "\n".join(f"- [{'x' if ok else ' '}] {what}" for what, ok in checks) + "\n\n" + "\n\n".join(notes)
    print(text)
    if not args.no_write:
        from bench._report import write_section

        print(f"wrote {write_section(TITLE, text)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
