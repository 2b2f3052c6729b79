"""Proxy training: short, real, deterministic training runs that score candidate architectures.

Nearly all of a search's compute is spent here, so the trainer is built for speed on a small CPU and for
honest numbers:

* **Recipe** (timm / DeiT style, scaled down): AdamW with linear warm-up then cosine decay (per step),
  label smoothing, gradient-norm clipping, and no weight decay on norms, biases, position embeddings and
  class tokens (every parameter with fewer than 2 dimensions, plus those by name).
* **Precision**: ``bf16=True`` runs forward and loss under ``torch.autocast(dtype=bfloat16)`` on CPU (AMX
  matrix units through oneDNN) and CUDA; weights, optimiser state and the loss reduction stay float32.
* **Determinism**: the weights come from ``build_model(arch, seed)``, the order and augmentation from a
  generator seeded per epoch, dropout / drop-path from a forked global RNG seeded with ``seed``: two runs
  with the same arguments and thread count give identical metrics, and the caller's RNG is untouched.
* **The paper recipe** (off by default; :mod:`mixnas.data.augment`): ``rand_augment`` (timm's
  ``'rand-m9-mstd0.5-inc1'`` form), ``random_resized_crop`` (area share ``crop_scale_min``-1, replacing the
  padded crop), ``random_erasing`` (per-image probability), ``mixup_alpha`` / ``cutmix_alpha`` /
  ``mixup_switch_prob`` (timm's batch-mode ``Mixup``; the loss becomes soft-target cross-entropy with
  ``label_smoothing`` folded into the targets) and ``eval_crop_pct`` (validation and test images resized to
  ``floor(size / eval_crop_pct)`` and centre-cropped, 0.875 being the 256/224 rule). Under mixup / cutmix the
  reported ``train_top1`` counts a prediction as correct when it is the argmax of the mixed target (the
  label with the larger weight).
* **Fidelity knobs**: ``epochs``, ``fraction`` (a seeded stratified share of the training split) and
  ``image_size`` (see :func:`prepare`).
* **Honesty**: a NaN / inf loss or gradient norm stops the run with status ``diverged`` and the reason;
  accuracy is never reported for a diverged model. ``max_minutes`` caps the wall clock (status ``timeout``,
  the model as it is then is evaluated and flagged ``partial``). The metrics JSON is rewritten after every
  epoch and on every exit (``interrupted`` / ``failed`` too), so nothing computed is lost.
* **Speed**: uint8 data in memory with batched augmentation (:mod:`mixnas.data.loader`), and glibc told to
  keep freed memory (:func:`tune_cpu_allocator`, process-wide) so large activations do not page-fault anew
  at every step.
* **Library use** (the search's Ray Tune trainable): ``callback(metrics: EpochMetrics)`` is called after
  every epoch and may return ``"stop"`` to end the run early (status ``stopped``).
* **Auxiliary losses**: a module may set an attribute ``aux_loss`` (a scalar tensor, or ``None``) during
  its forward pass, e.g. a mixture-of-experts load-balancing loss. The trainer adds
  ``sum(m.aux_loss for m in model.modules() if getattr(m, "aux_loss", None) is not None)`` to the training
  loss as is: the module applies its own coefficient.

Top-1 accuracies are percentages (0-100), as in the named models' reported numbers.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.config import ArchConfig
from mixnas.data import DataSplits, get_dataset, load_dataset
from mixnas.data.augment import Mixup, RandAugment
from mixnas.data.base import Split
from mixnas.data.loader import Augment, BatchLoader
from mixnas.errors import MixnasError, did_you_mean
from mixnas.network import build_model
from mixnas.provenance import code_version, environment
from mixnas.util import atomic_write_json, finite_or_none
from mixnas.vocab import TrainStatus

NO_DECAY_NAMES = ("pos_embed", "cls_token", "relative_position", "rel_pos")
# AdamW implementations (the same update; ``fused`` saves about 10 % of a small model's CPU step, as
# measured by bench/table_speed.py). None keeps torch's default (a for-loop on CPU).
ADAMW = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a proxy run's numbers; saved with every result.

    The field names are the keys a search space's ``task.train`` section accepts. The defaults are tuned for
    3-epoch proxies on 32x32 data, which underfit rather than overfit: the crop padding is half the usual
    CIFAR setting (on Fashion-MNIST the 1M-parameter Strip-MLP of ``examples/`` reached 88.3 % validation
    top-1 in 3 epochs with padding 2, 86.9 % with padding 4).

    The fields after ``eval_batch_size`` (the Strip-MLP paper's recipe, :mod:`mixnas.data.augment`) are off by
    default and left out of :meth:`to_dict` while they hold their defaults, so every saved config and digest
    of a recipe that does not use them is unchanged. The official Strip-MLP recipe is
    ``rand_augment='rand-m9-mstd0.5-inc1', random_resized_crop=True, random_erasing=0.25, mixup_alpha=0.8,
    cutmix_alpha=1.0, eval_crop_pct=0.875`` (with ``label_smoothing=0.1``, the default).
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max gradient L2 norm; 0 switches clipping off
    bf16: bool = False
    fraction: float = 1.0  # share of the training split used (stratified, seeded by split_seed: same for all trials)
    val_fraction: float = 0.1  # share of the training set held out for validation
    split_seed: int = 0  # seed of that hold-out: fixed across a search so every trial sees the same split
    image_size: int | None = None  # None: the architecture's
    augment: bool = True
    crop_padding: int | None = None  # None: image_size // 16 (2 pixels at 32x32)
    flip: bool | None = None  # None: the dataset's default (off for digits)
    max_minutes: float | None = None  # wall-clock cap for the run
    seed: int = 0
    eval_batch_size: int = 500
    rand_augment: str | None = field(default=None, metadata={"omit_default": True})  # e.g. 'rand-m9-mstd0.5-inc1'
    random_resized_crop: bool = field(default=False, metadata={"omit_default": True})  # replaces the padded crop
    crop_scale_min: float = field(default=0.08, metadata={"omit_default": True})  # its smallest area share
    random_erasing: float = field(default=0.0, metadata={"omit_default": True})  # probability per image
    mixup_alpha: float = field(default=0.0, metadata={"omit_default": True})  # 0: no mixup
    cutmix_alpha: float = field(default=0.0, metadata={"omit_default": True})  # 0: no cutmix
    mixup_switch_prob: float = field(default=0.5, metadata={"omit_default": True})  # cutmix's share when both on
    eval_crop_pct: float | None = field(default=None, metadata={"omit_default": True})  # None: no eval resize
    adamw: str | None = field(default=None, metadata={"omit_default": True})  # None: torch's default; see ADAMW

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> MixnasError:
            return MixnasError(f"train config: {name} {rule}, found {getattr(self, name)!r}")

        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "must be a positive integer")
        for name in ("seed", "split_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(name, "must be a non-negative integer")
        for name in ("lr", "weight_decay", "warmup_epochs", "min_lr_ratio", "label_smoothing", "grad_clip",
                     "fraction", "val_fraction", "crop_scale_min", "random_erasing", "mixup_alpha", "cutmix_alpha",
                     "mixup_switch_prob"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(name, "must be a non-negative number")
            object.__setattr__(self, name, float(v))
        if self.lr <= 0:
            raise bad("lr", "must be positive")
        if not 0.0 < self.fraction <= 1.0:
            raise bad("fraction", "must be in (0, 1]")
        if not 0.0 < self.val_fraction < 1.0:
            raise bad("val_fraction", "must be in (0, 1)")
        if self.label_smoothing >= 1.0:
            raise bad("label_smoothing", "must be below 1")
        if self.min_lr_ratio > 1.0:
            raise bad("min_lr_ratio", "must be at most 1")
        for name in ("random_erasing", "mixup_switch_prob"):
            if getattr(self, name) > 1.0:
                raise bad(name, "must be in [0, 1]")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise bad("crop_scale_min", "must be in (0, 1]")
        for name in ("bf16", "augment", "random_resized_crop"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        if self.flip is not None and not isinstance(self.flip, bool):
            raise bad("flip", "must be true, false or null")
        for name in ("image_size", "crop_padding"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "image_size"
                                                                                      else 0)):
                raise bad(name, "must be a positive integer or null")
        if self.max_minutes is not None:
            if isinstance(self.max_minutes, bool) or not isinstance(self.max_minutes, (int, float)) \
                    or not self.max_minutes > 0:
                raise bad("max_minutes", "must be a positive number or null")
            object.__setattr__(self, "max_minutes", float(self.max_minutes))
        if self.eval_crop_pct is not None:
            v = self.eval_crop_pct
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
                raise bad("eval_crop_pct", "must be in (0, 1] or null")
            object.__setattr__(self, "eval_crop_pct", float(v))
        if self.adamw is not None and self.adamw not in ADAMW:
            raise bad("adamw", f"must be null (torch's default) or one of {', '.join(ADAMW)}")
        if self.rand_augment is not None:
            RandAugment.parse(self.rand_augment)  # a malformed string is a MixnasError naming the form
        if not self.augment:
            for name in ("rand_augment", "random_resized_crop", "random_erasing"):
                if getattr(self, name):
                    raise bad(name, "needs augment: true")
        if self.random_resized_crop and self.crop_padding:
            raise bad("crop_padding", "cannot be combined with random_resized_crop (which replaces the padded crop)")

    def to_dict(self) -> dict[str, Any]:
        """The fields, less the paper-recipe ones that hold their defaults (so old digests stay valid)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.metadata.get("omit_default") and getattr(self, f.name) == f.default)}

    @property
    def mixing(self) -> bool:
        """Whether mixup or cutmix is on (the loss is then soft-target cross-entropy)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "train config") -> TrainConfig:
        allowed = [f.name for f in fields(cls)]
        for key in data:
            if key not in allowed:
                raise MixnasError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; allowed: "
                                  f"{', '.join(allowed)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class EpochMetrics:
    """What is reported after every epoch (to the callback, the metrics file and Ray Tune)."""

    epoch: int  # 1-based
    steps: int  # optimiser steps so far
    train_loss: float  # mean training loss of the epoch (with label smoothing, mixing and any aux loss)
    train_top1: float  # on the augmented training batches, % (under mixing: vs the mixed target's argmax)
    val_loss: float  # plain cross-entropy on the validation split
    val_top1: float  # %
    lr: float  # at the end of the epoch
    train_time_s: float
    eval_time_s: float
    epoch_time_s: float
    images_per_s: float  # training images per second of training time
    partial: float = 1.0  # share of the epoch trained (below 1 only when the time cap hit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """The outcome of one run; ``to_dict()`` is the metrics JSON."""

    status: str  # running, then completed, diverged, timeout, stopped, interrupted or failed
    reason: str
    arch: dict[str, Any]
    digest: str
    seed: int
    config: dict[str, Any]
    params: int
    data: dict[str, Any]
    curve: list[EpochMetrics] = field(default_factory=list)
    test: dict[str, Any] | None = None
    wall_time_s: float = 0.0
    checkpoint: str | None = None
    code: dict[str, Any] = field(default_factory=code_version)
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def val_top1(self) -> float | None:
        """Validation top-1 (%) of the final model; None when diverged or no epoch finished."""
        if self.status == TrainStatus.DIVERGED or not self.curve:
            return None
        return self.curve[-1].val_top1

    @property
    def best_val_top1(self) -> float | None:
        if self.status == TrainStatus.DIVERGED or not self.curve:
            return None
        return max(m.val_top1 for m in self.curve)

    @property
    def epochs_completed(self) -> int:
        return sum(1 for m in self.curve if m.partial >= 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "val_top1": self.val_top1,
                "best_val_top1": self.best_val_top1, "epochs_completed": self.epochs_completed,
                "test": self.test, "wall_time_s": round(self.wall_time_s, 3), "params": self.params,
                "digest": self.digest, "seed": self.seed, "arch": self.arch, "config": self.config,
                "data": self.data, "curve": [m.to_dict() for m in self.curve], "checkpoint": self.checkpoint,
                "code": self.code, "env": self.env}


Callback = Callable[[EpochMetrics], Any]


class _Stop(Exception):
    def __init__(self, status: str, reason: str):
        self.status, self.reason = status, reason


# -- pieces ---------------------------------------------------------------------------------------------------


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: weights decay; norms, biases, embeddings and tokens (ndim < 2 or by name) do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or any(key in name for key in NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps (from lr / warmup), then cosine from ``lr`` to ``lr * min_lr_ratio``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = lr * min_lr_ratio
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def aux_modules(model: nn.Module) -> list[nn.Module]:
    """Modules that may publish an auxiliary loss (an ``aux_loss`` attribute)."""
    return [m for m in model.modules() if hasattr(m, "aux_loss")]


def aux_loss(modules: list[nn.Module]) -> Tensor | None:
    terms = [m.aux_loss for m in modules if getattr(m, "aux_loss", None) is not None]
    return sum(terms) if terms else None


_ALLOCATOR_TUNED: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed memory for reuse instead of mapping fresh pages for every large tensor (glibc only).

    glibc serves blocks above its mmap threshold (at most 32 MiB) with ``mmap`` and unmaps them on ``free``,
    so every large activation of every training step page-faults its memory in again: for an 8192 x 1024
    float32 activation that costs about as much as the bias copy it is written by. ``mallopt(M_MMAP_MAX, 0)``
    and a 1 GiB trim threshold make such blocks come from the heap and stay there; the 4.35M-parameter
    Mixer of ``bench/train_throughput.py`` trains about 13 % faster in fp32. Process-wide and idempotent;
    returns whether it took effect (False off glibc).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is None:
        _ALLOCATOR_TUNED = False
        if sys.platform.startswith("linux"):
            import ctypes
            import ctypes.util

            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                m_trim_threshold, m_mmap_max = -1, -4
                _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
            except (OSError, AttributeError):
                pass  # not glibc (musl, ...): nothing to tune
    return _ALLOCATOR_TUNED


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, data: DataSplits, *, batch_size: int = 500, bf16: bool = False,
             device: str | torch.device = "cpu", crop_pct: float | None = None) -> dict[str, float]:
    """Mean cross-entropy and top-1 (%) of ``model`` on ``split`` (no augmentation; train mode restored).

    ``crop_pct``: resize to ``floor(size / crop_pct)`` and centre-crop first (``TrainConfig.eval_crop_pct``).
    """
    device = torch.device(device)
    if len(split) == 0:
        raise MixnasError(f"{data.name}: cannot evaluate on an empty split")
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        for x, y in BatchLoader(split, batch_size, mean=data.mean, std=data.std, device=device, crop_pct=crop_pct):
            with _autocast(device, bf16):
                logits = model(x)
            logits = logits.float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    finally:
        model.train(was_training)
    return {"loss": loss_sum / n, "top1": 100.0 * correct / n, "images": n}



# -- checkpoints ------------------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "mixnas-checkpoint-1"


@dataclass(frozen=True)
class Checkpoint:
    arch: ArchConfig
    model: nn.Module
    config: TrainConfig
    result: dict[str, Any]


def save_checkpoint(path: str | Path, model: nn.Module, arch: ArchConfig, cfg: TrainConfig,
                    result: dict[str, Any]) -> None:
    """Weights plus the ArchConfig that builds them, the TrainConfig and the result (loadable weights-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": CHECKPOINT_FORMAT, "arch": arch.to_dict(), "digest": arch.digest(),
            "train_config": cfg.to_dict(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "result": json.loads(json.dumps(result, allow_nan=False, default=str)), "code": code_version()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from the stored ArchConfig and load its weights."""
    path = Path(path)
    if not path.is_file():
        raise MixnasError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a damaged or foreign file is a user error, reported in one line
        raise MixnasError(f"{path}: not a readable mixnas checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise MixnasError(f"{path}: not a mixnas checkpoint (expected format {CHECKPOINT_FORMAT})")
    arch = ArchConfig.from_dict(blob["arch"], where=str(path))
    if arch.digest() != blob["digest"]:
        raise MixnasError(f"{path}: the stored ArchConfig has digest {arch.digest()} here but {blob['digest']} "
                          "when saved (written by an incompatible mixnas version)")
    model = build_model(arch).to(device)
    model.load_state_dict(blob["state_dict"])
    return Checkpoint(arch, model, TrainConfig.from_dict(blob["train_config"]), blob["result"])


# -- preparing a run -------------------------------------------------------------------------------------------


def prepare(ref: str | ArchConfig, dataset: str, cfg: TrainConfig | None = None, *,
            data_dir: str | Path | None = None, test: bool = False) -> tuple[ArchConfig, DataSplits]:
    """The architecture and the data of a run, made to agree.

    A named model takes the dataset's channel count and its default image size (32 for the small sets);
    an ArchConfig (or YAML file) keeps its own image size and channels and the data are fitted to them.
    ``cfg.image_size`` overrides the size either way (the fidelity knob). The class count is the dataset's.
    """
    from mixnas.models import looks_like_file, resolve_arch

    cfg = cfg or TrainConfig()
    spec = get_dataset(dataset)
    named = isinstance(ref, str) and not looks_like_file(ref)
    base = None if named else resolve_arch(ref)
    image_size = cfg.image_size or (spec.default_image_size if named else base.input.image_size)
    in_channels = spec.in_channels if named else base.input.in_channels
    data = load_dataset(dataset, data_dir, image_size, in_channels, cfg.val_fraction, cfg.split_seed, test=test)
    arch = resolve_arch(ref, image_size=image_size, in_channels=in_channels, num_classes=data.num_classes)
    return arch, data


def _check_task(arch: ArchConfig, data: DataSplits, cfg: TrainConfig) -> ArchConfig:
    if cfg.image_size is not None and cfg.image_size != arch.input.image_size:
        arch = arch.with_task(image_size=cfg.image_size)
    inp = arch.input
    got = (data.image_size, data.in_channels, data.num_classes)
    want = (inp.image_size, inp.in_channels, inp.num_classes)
    if got != want:
        raise MixnasError(f"{data.name}: the data are {got[1]}x{got[0]}x{got[0]} with {got[2]} classes but the "
                          f"architecture takes {want[1]}x{want[0]}x{want[0]} with {want[2]} classes; load the data "
                          "for the architecture (mixnas.train.prepare does)")
    if (data.val_fraction, data.seed) != (cfg.val_fraction, cfg.split_seed):
        raise MixnasError(f"{data.name}: the data were split with val_fraction {data.val_fraction} and seed "
                          f"{data.seed}, the TrainConfig says {cfg.val_fraction} and {cfg.split_seed}")
    if len(data.val) == 0:
        raise MixnasError(f"{data.name}: the validation split is empty; raise val_fraction")
    return arch


# -- the run ------------------------------------------------------------------------------------------------


def train(arch: ArchConfig, data: DataSplits, cfg: TrainConfig | None = None, callback: Callback | None = None, *,
          device: str | torch.device = "cpu", metrics_path: str | Path | None = None,
          checkpoint_path: str | Path | None = None, progress: bool | None = None,
          final_eval: bool = False) -> TrainResult:
    """Train ``arch`` on ``data`` under ``cfg`` and return the result (also written to ``metrics_path``).

    ``final_eval=True`` evaluates the final model on ``data.test`` (load it with ``test=True``); only do
    this for a final, explicit evaluation, never inside a search. ``progress``: a tqdm bar on stderr
    (default: when stderr is a terminal).
    """
    cfg = cfg or TrainConfig()
    arch = _check_task(arch, data, cfg)
    if final_eval and data.test is None:
        raise MixnasError(f"{data.name}: final evaluation needs the test split; load it with test=True")
    device = torch.device(device)
    tuned = tune_cpu_allocator()
    show = sys.stderr.isatty() if progress is None else progress
    t_start = time.perf_counter()
    loader, mix = _train_loader(arch, data, cfg, device)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(cfg.seed)
        run = _start_run(arch, data, cfg, device, loader, mix, tuned=tuned, show=show, t_start=t_start,
                         metrics_path=Path(metrics_path) if metrics_path else None)
        _run_epochs(run, callback)
        if run.result.status != TrainStatus.DIVERGED:
            _finish(run, final_eval, checkpoint_path)
        run.save()
    return run.result


@dataclass
class _Run:
    """One training run in progress: its fixed parts, its result so far and the optimiser step counter,
    shared by the steps of :func:`train` (so each step is a function of the run, not of a dozen locals)."""

    arch: ArchConfig
    data: DataSplits
    cfg: TrainConfig
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: BatchLoader
    mix: Mixup | None
    result: TrainResult
    show: bool
    t_start: float
    metrics_path: Path | None
    aux: list[nn.Module] = field(default_factory=list)
    params: list[Tensor] = field(default_factory=list)
    step: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    @property
    def deadline(self) -> float:
        return self.t_start + self.cfg.max_minutes * 60.0 if self.cfg.max_minutes else math.inf

    def lr(self, step: int) -> float:
        """The learning rate at optimiser step ``step`` (warm-up, then cosine)."""
        warmup = min(self.total_steps, round(self.cfg.warmup_epochs * self.steps_per_epoch))
        return lr_at(step, self.total_steps, warmup, self.cfg.lr, self.cfg.min_lr_ratio)

    def save(self, status: str | None = None) -> None:
        """Stamp the wall time (and ``status``) and write the metrics file, if there is one."""
        self.result.wall_time_s = time.perf_counter() - self.t_start
        if status is not None:
            self.result.status = status
        if self.metrics_path is not None:
            atomic_write_json(self.metrics_path, self.result.to_dict())


@dataclass
class _EpochTally:
    """The running sums of one epoch's training steps."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0
    lr: float = 0.0
    timed_out: bool = False


def _augment(arch: ArchConfig, data: DataSplits, cfg: TrainConfig) -> Augment | None:
    """The training augmentation ``cfg`` asks for (None without ``augment``)."""
    if not cfg.augment:
        return None
    pad = arch.input.image_size // 16 if cfg.crop_padding is None else cfg.crop_padding
    fill = tuple(min(255, round(255 * m)) for m in data.mean)  # timm's img_mean for the geometric ops
    return Augment(0 if cfg.random_resized_crop else pad, data.flip if cfg.flip is None else cfg.flip,
                   resized_crop=(cfg.crop_scale_min, 1.0) if cfg.random_resized_crop else None,
                   rand_augment=RandAugment.parse(cfg.rand_augment, fill) if cfg.rand_augment else None,
                   erasing=cfg.random_erasing)


def _train_loader(arch: ArchConfig, data: DataSplits, cfg: TrainConfig,
                  device: torch.device) -> tuple[BatchLoader, Mixup | None]:
    """The shuffled, augmented training batches (on ``cfg.fraction`` of the split) and the mixing, if any."""
    train_split = data.train.fraction(cfg.fraction, cfg.split_seed) if cfg.fraction < 1.0 else data.train
    if len(train_split) == 0:
        raise MixnasError(f"{data.name}: no training images left at fraction {cfg.fraction}")
    mix = None
    if cfg.mixing:
        mix = Mixup(data.num_classes, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob,
                    label_smoothing=cfg.label_smoothing)
    drop_last = len(train_split) >= 2 * cfg.batch_size  # skip a ragged last batch unless the set is tiny
    loader = BatchLoader(train_split, cfg.batch_size, mean=data.mean, std=data.std, shuffle=True,
                         augment=_augment(arch, data, cfg), seed=cfg.seed, drop_last=drop_last, device=device,
                         mix=mix)
    return loader, mix


def _start_run(arch: ArchConfig, data: DataSplits, cfg: TrainConfig, device: torch.device, loader: BatchLoader,
               mix: Mixup | None, *, tuned: bool, show: bool, t_start: float, metrics_path: Path | None) -> _Run:
    """Build the model (seeded), the running result and the optimiser (in that order: the RNG sees the same
    draws as always)."""
    model = build_model(arch, seed=cfg.seed).to(device)
    model.train()
    result = TrainResult("running", "", arch.to_dict(), arch.digest(), cfg.seed, cfg.to_dict(),
                         sum(p.numel() for p in model.parameters()),
                         {**data.describe(), "train_used": loader.num_samples},
                         env={**environment(device), "malloc_tuned": tuned})
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999),
                                  **ADAMW.get(cfg.adamw, {}))
    return _Run(arch, data, cfg, device, model, optimizer, loader, mix, result, show, t_start, metrics_path,
                aux=aux_modules(model), params=[p for p in model.parameters() if p.requires_grad])


def _run_epochs(run: _Run, callback: Callback | None) -> None:
    """Train every epoch, and set the result's status and reason; a stop (divergence, the time cap, the
    callback) ends the run normally, an interrupt or error is recorded in the metrics file and re-raised."""
    try:
        for epoch in range(1, run.cfg.epochs + 1):
            _epoch(run, epoch, callback)
        run.result.status, run.result.reason = TrainStatus.COMPLETED, f"trained {run.cfg.epochs} epochs"
    except _Stop as stop:
        run.result.status, run.result.reason = stop.status, stop.reason
    except KeyboardInterrupt:
        run.result.reason = f"interrupted after {len(run.result.curve)} epochs"
        run.save(TrainStatus.INTERRUPTED)
        raise
    except BaseException as err:
        run.result.reason = f"{type(err).__name__}: {err}"
        run.save(TrainStatus.FAILED)
        raise


def _epoch(run: _Run, epoch: int, callback: Callback | None) -> None:
    """One epoch: train, validate, record; raises :class:`_Stop` when the run must end after it."""
    cfg = run.cfg
    tally, train_time = _train_epoch(run, epoch)
    metrics = _validate(run, epoch, tally, train_time)
    run.result.curve.append(metrics)
    if tally.timed_out:
        raise _Stop(TrainStatus.TIMEOUT, f"the wall-clock cap of {cfg.max_minutes:g} min was reached after "
                               f"{epoch - 1} epochs and {tally.steps} of {run.steps_per_epoch} steps")
    run.save("running")
    if callback is not None and callback(metrics) == "stop":
        raise _Stop(TrainStatus.STOPPED, f"stopped by the callback after epoch {epoch} of {cfg.epochs}")
    if epoch < cfg.epochs and time.perf_counter() > run.deadline:
        raise _Stop(TrainStatus.TIMEOUT, f"the wall-clock cap of {cfg.max_minutes:g} min was reached after "
                               f"{epoch} of {cfg.epochs} epochs")


def _train_epoch(run: _Run, epoch: int) -> tuple[_EpochTally, float]:
    """The training steps of ``epoch`` (cut short at the deadline); its tally and training time in seconds."""
    run.loader.set_epoch(epoch)
    bar = _bar(run.steps_per_epoch, f"epoch {epoch}/{run.cfg.epochs}", run.show)
    t_epoch = time.perf_counter()
    tally = _EpochTally()
    for x, y in run.loader:
        _train_step(run, x, y, epoch, tally)
        if bar is not None:
            bar.update(1)
            if tally.steps % 10 == 0:
                bar.set_postfix(loss=f"{tally.loss_sum / tally.seen:.4f}", lr=f"{tally.lr:.2e}", refresh=False)
        if time.perf_counter() > run.deadline and tally.steps < run.steps_per_epoch:
            tally.timed_out = True
            break
    if bar is not None:
        bar.close()
    return tally, time.perf_counter() - t_epoch


def _train_step(run: _Run, x: Tensor, y: Tensor, epoch: int, tally: _EpochTally) -> None:
    """One optimiser step on the batch ``(x, y)``; raises :class:`_Stop` when the loss or gradient diverges."""
    cfg = run.cfg
    lr = tally.lr = run.lr(run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with _autocast(run.device, cfg.bf16):
        logits = run.model(x)
    if run.mix is not None:  # soft targets, label smoothing already folded in
        loss = F.cross_entropy(logits.float(), y)
        y = y.argmax(1)
    else:
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
    extra = aux_loss(run.aux)
    if extra is not None:
        loss = loss + extra.float()
    loss_value = float(loss.detach())
    where = f"at epoch {epoch}, step {tally.steps + 1} of {run.steps_per_epoch} (lr {lr:.3g})"
    if not math.isfinite(loss_value):
        raise _Stop(TrainStatus.DIVERGED, f"the training loss became {loss_value} {where}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip))
        if not math.isfinite(norm):
            raise _Stop(TrainStatus.DIVERGED, f"the gradient norm became {norm} {where}")
    run.optimizer.step()
    run.step += 1
    tally.steps += 1
    tally.loss_sum += loss_value * len(y)
    tally.correct += int((logits.detach().argmax(1) == y).sum())
    tally.seen += len(y)


def _validate(run: _Run, epoch: int, tally: _EpochTally, train_time: float) -> EpochMetrics:
    """Evaluate on the validation split and make the epoch's metrics; raises :class:`_Stop` on a
    non-finite validation loss."""
    cfg, data = run.cfg, run.data
    t_eval = time.perf_counter()
    val = evaluate(run.model, data.val, data, batch_size=cfg.eval_batch_size, bf16=cfg.bf16, device=run.device,
                   crop_pct=cfg.eval_crop_pct)
    eval_time = time.perf_counter() - t_eval
    if not math.isfinite(val["loss"]):
        raise _Stop(TrainStatus.DIVERGED, f"the validation loss became {val['loss']} after epoch {epoch}")
    seen = tally.seen
    return EpochMetrics(
        epoch=epoch, steps=run.step, train_loss=tally.loss_sum / max(1, seen),
        train_top1=100.0 * tally.correct / max(1, seen), val_loss=val["loss"], val_top1=val["top1"],
        lr=run.lr(max(0, run.step - 1)), train_time_s=train_time, eval_time_s=eval_time,
        epoch_time_s=train_time + eval_time, images_per_s=seen / train_time if train_time > 0 else 0.0,
        partial=tally.steps / run.steps_per_epoch)


def _finish(run: _Run, final_eval: bool, checkpoint_path: str | Path | None) -> None:
    """After a run that did not diverge: the explicit test evaluation, if asked, and the checkpoint."""
    cfg, data = run.cfg, run.data
    if final_eval:
        test = evaluate(run.model, data.test, data, batch_size=cfg.eval_batch_size, bf16=cfg.bf16,
                        device=run.device, crop_pct=cfg.eval_crop_pct)
        run.result.test = {"loss": finite_or_none(test["loss"]), "top1": test["top1"], "images": test["images"]}
    if checkpoint_path is not None:
        run.result.checkpoint = str(checkpoint_path)
        run.result.wall_time_s = time.perf_counter() - run.t_start
        save_checkpoint(checkpoint_path, run.model, run.arch, cfg, run.result.to_dict())


def _bar(total: int, desc: str, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)
