"""The ``mixnas train`` and ``mixnas proxy`` commands (registered by :func:`register`).

``mixnas train NAME|ARCH.yaml --dataset fashion-mnist --epochs 3 [--bf16] [--image-size 32] [--seed 0]``
trains one architecture, shows a progress bar when stderr is a terminal, rewrites
``OUT/metrics.json`` after every epoch and optionally writes ``OUT/model.pt`` (weights + ArchConfig).
``--final-eval`` adds the test-split accuracy: a separate, explicit step that a search never takes.

``mixnas proxy NAME|ARCH.yaml|SPACE.yaml ... [-n N]`` prints zero-cost proxy scores (and their timings) of
the given architectures, or of ``N`` candidates sampled from a search space.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mixnas.cli.format import format_table
from mixnas.cli.signals import terminate_as_interrupt
from mixnas.errors import MixnasError
from mixnas.util import human
from mixnas.vocab import TrainStatus


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``proxy`` commands to the ``mixnas`` parser."""
    from mixnas.data import dataset_names
    from mixnas.proxies import PROXIES
    from mixnas.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="proxy-train a named model or ArchConfig YAML on a dataset",
                       description="Train one architecture; metrics JSON is rewritten after every epoch.")
    p.add_argument("model", help="a named model (see `mixnas models`) or an ArchConfig YAML file")
    p.add_argument("--dataset", default="fashion-mnist", help=f"one of {', '.join(dataset_names())} "
                                                              "(default fashion-mnist)")
    p.add_argument("--data-dir", help="folder with the dataset files (looked in before $MIXNAS_DATA, the user "
                                      "cache and /usr/share/datasets); the root for imagefolder")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak AdamW learning rate (default {d.lr:g})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"default {d.weight_decay:g}")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help=f"default {d.warmup_epochs:g}")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help=f"default {d.label_smoothing:g}")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help=f"max gradient norm, 0 = off "
                                                                        f"(default {d.grad_clip:g})")
    p.add_argument("--fraction", type=float, default=d.fraction, help="share of the training split to train on")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help=f"share of the training set held out for validation (default {d.val_fraction:g})")
    p.add_argument("--image-size", type=int, help="input size (default: the YAML's, or the dataset's for a "
                                                  "named model: 32 for the small datasets)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random crop / flip")
    p.add_argument("--crop-padding", type=int, help="zero padding of the random crop (default image size / 16)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (AMX on recent CPUs; about 1.7x "
                                                       "faster here); default float32")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, order and augmentation")
    p.add_argument("--max-minutes", type=float, help="wall-clock cap of the run")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--out", help="output folder (default runs/train/NAME-DIGEST-sSEED)")
    p.add_argument("--checkpoint", action="store_true", help="also write OUT/model.pt (weights + ArchConfig)")
    p.add_argument("--final-eval", action="store_true", help="evaluate the final model on the test split")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("proxy", help="zero-cost proxy scores of architectures or of candidates from a space")
    p.add_argument("refs", nargs="+", metavar="MODEL|ARCH.yaml|SPACE.yaml",
                   help="named models, ArchConfig YAML files or search-space files")
    p.add_argument("-n", type=int, default=5, help="candidates sampled from each space (default 5)")
    p.add_argument("--dataset", help="dataset of the batch (default: the space's task, else fashion-mnist)")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--image-size", type=int, help="input size for named models (default: the dataset's)")
    p.add_argument("--batch-size", type=int, default=64, help="images in the scoring batch (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch and the sampling")
    p.add_argument("--proxies", default=",".join(PROXIES), help=f"comma-separated (default {','.join(PROXIES)})")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_proxy)


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise MixnasError(f"--threads must be at least 1, found {n}")
        torch.set_num_threads(n)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MixnasError(f"--device {name!r} is not a device; allowed: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise MixnasError(f"--device {name!r}: allowed: cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MixnasError("--device cuda: no CUDA device is available here")
    return device


def cmd_train(args: argparse.Namespace) -> int:
    from mixnas.train import EpochMetrics, TrainConfig, prepare, train

    _threads(args.threads)
    device = _device(args.device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                      grad_clip=args.grad_clip, bf16=args.bf16, fraction=args.fraction,
                      val_fraction=args.val_fraction, image_size=args.image_size, augment=args.augment,
                      crop_padding=args.crop_padding, max_minutes=args.max_minutes, seed=args.seed)
    arch, data = prepare(args.model, args.dataset, cfg, data_dir=args.data_dir, test=args.final_eval)
    label = arch.name or Path(args.model).stem
    out = Path(args.out or f"runs/train/{label}-{arch.digest()}-s{cfg.seed}")
    metrics = out / "metrics.json"
    inp = arch.input
    print(f"training {label} (digest {arch.digest()}, {inp.in_channels}x{inp.image_size}x{inp.image_size}, "
          f"{data.num_classes} classes) on {data.name}: {len(data.train)} train / {len(data.val)} val images, "
          f"{cfg.epochs} epochs, {'bf16' if cfg.bf16 else 'fp32'}, {torch.get_num_threads()} threads, {device}",
          file=sys.stderr)

    def show_epoch(m: EpochMetrics) -> None:
        part = f" (partial: {100 * m.partial:.0f}% of the epoch)" if m.partial < 1 else ""
        print(f"epoch {m.epoch}: train loss {m.train_loss:.4f}  val loss {m.val_loss:.4f}  val top-1 "
              f"{m.val_top1:.2f}%  {m.images_per_s:.0f} img/s  {m.epoch_time_s:.1f} s{part}", flush=True)

    with terminate_as_interrupt():
        result = train(arch, data, cfg, callback=show_epoch, device=device, metrics_path=metrics,
                       checkpoint_path=out / "model.pt" if args.checkpoint else None, progress=args.progress,
                       final_eval=args.final_eval)
    if result.status == TrainStatus.TIMEOUT and result.curve and result.curve[-1].partial < 1:
        show_epoch(result.curve[-1])  # the partial epoch ends the run before the callback
    if result.status == TrainStatus.DIVERGED:
        raise MixnasError(f"{label} diverged: {result.reason}; metrics written to {metrics}")
    print(f"{result.status}: {result.reason}; val top-1 {result.val_top1:.2f}% "
          f"({result.params:,} params, wall {result.wall_time_s:.1f} s)")
    if result.test is not None:
        print(f"test top-1 {result.test['top1']:.2f}% on {result.test['images']} test images (final evaluation)")
    print(f"metrics: {metrics}" + (f"\ncheckpoint: {result.checkpoint}" if result.checkpoint else ""))
    return 0


def _is_space_file(ref: str) -> bool:
    import yaml

    path = Path(ref)
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False  # let the ArchConfig loader report it with its location
    return isinstance(data, dict) and ("arch" in data or "extends" in data)


def cmd_proxy(args: argparse.Namespace) -> int:
    from mixnas.proxies import check_proxies

    _threads(args.threads)
    proxies = check_proxies([p.strip() for p in args.proxies.split(",") if p.strip()])
    if args.n < 1:
        raise MixnasError(f"-n must be at least 1, found {args.n}")
    if args.batch_size < 2:
        raise MixnasError(f"--batch-size must be at least 2, found {args.batch_size}")
    rows = _score_candidates(_proxy_candidates(args), proxies, args)
    if args.json:
        print(json.dumps([{**s.to_dict(), "label": label, "dataset": ds, "batch_size": args.batch_size}
                          for label, ds, s in rows], indent=2))
        return 0
    _print_proxy_table(rows, proxies, args)
    return 0


def _proxy_candidates(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """(label, arch, dataset) of every reference: a space file gives ``-n`` sampled candidates, a named model
    or ArchConfig file one architecture (a named model sized for the dataset)."""
    from mixnas.data import get_dataset
    from mixnas.models import looks_like_file, resolve_arch

    candidates: list[tuple[str, Any, str]] = []
    for ref in args.refs:
        if _is_space_file(ref):
            from mixnas.optuna_io import sample_candidates
            from mixnas.space import load_space

            space = load_space(ref)
            dataset = args.dataset or space.task.dataset
            get_dataset(dataset)
            arches = [a for _, a, _ in sample_candidates(space, args.n, args.seed) if a is not None]
            candidates += [(f"{space.name}#{i}", a, dataset) for i, a in enumerate(arches)]
        else:
            dataset = args.dataset or "fashion-mnist"
            spec = get_dataset(dataset)
            if looks_like_file(ref):
                arch = resolve_arch(ref)
            else:
                arch = resolve_arch(ref, image_size=args.image_size or spec.default_image_size,
                                    in_channels=spec.in_channels)
            candidates.append((arch.name or Path(ref).stem, arch, dataset))
    return candidates


def _score_candidates(candidates: list[tuple[str, Any, str]], proxies: Sequence[str],
                      args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(label, dataset, scores) of every candidate; one scoring batch per dataset and input shape, so that
    candidates of the same task are scored on the same images."""
    from mixnas.data import load_dataset
    from mixnas.proxies import proxy_batch, score_arch

    batches: dict[tuple, tuple] = {}
    rows = []
    for i, (label, arch, dataset) in enumerate(candidates):
        inp = arch.input
        key = (dataset, inp.image_size, inp.in_channels)
        if key not in batches:
            data = load_dataset(dataset, args.data_dir, inp.image_size, inp.in_channels, seed=0)
            batches[key] = (data, *proxy_batch(data, args.batch_size, args.seed))
        data, x, y = batches[key]
        if inp.num_classes != data.num_classes:
            arch = arch.with_task(num_classes=data.num_classes)
        scores = score_arch(arch, x, y, proxies, seed=args.seed)
        rows.append((label, dataset, scores))
        if not args.json and sys.stderr.isatty():
            print(f"\rscored {i + 1}/{len(candidates)}", end="", file=sys.stderr, flush=True)
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    return rows


def _print_proxy_table(rows: list[tuple[str, str, Any]], proxies: Sequence[str], args: argparse.Namespace) -> None:
    """One row of scores per candidate, then the median time each proxy took."""
    table = []
    for label, _, s in rows:
        cells = [label, s.digest]
        for p in proxies:
            v = s.scores[p]
            cells.append(human(v) if p in ("params", "macs") else f"{v:.4g}")
        cells.append(f"{sum(s.seconds.values()):.2f}")
        table.append(cells)
    print(format_table(["candidate", "digest", *proxies, "seconds"], table,
                       [False, False] + [True] * (len(proxies) + 1)))
    timing = ", ".join(f"{p} {statistics.median(s.seconds[p] for _, _, s in rows):.3f} s" for p in proxies)
    print(f"\nmedian time per candidate: {timing} ({torch.get_num_threads()} threads; batch of {args.batch_size} "
          f"training images, seed {args.seed}).\nHigher is better for synflow, naswot, grad_norm and snip; "
          "params and MACs are the baselines.")
