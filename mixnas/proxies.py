"""Zero-cost proxies (fidelity 0): score an untrained network from one seeded batch in well under a second.

* ``synflow`` (Tanaka et al., NeurIPS 2020; as used for NAS by Abdelfattah et al., ICLR 2021): with every
  parameter replaced by its absolute value, a forward pass of an all-ones input in float64, ``R = sum(out)``;
  the score is ``sum |theta * dR/dtheta|`` over the weights. Data-free; eval mode, so BatchNorm at
  initialisation is the identity.
* ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): the binary
  activation pattern ``x > 0`` at the input of every GELU / ReLU / SiLU of each sample in the batch gives a
  code ``c_i``; ``K_ij`` counts the units where samples ``i`` and ``j`` agree; the score is
  ``log |det K|``. Activations are captured with a ``TorchFunctionMode`` so functional calls
  (``F.gelu`` inside a mixer) are seen, not only ``nn.GELU`` modules. A net that maps different images to
  identical patterns has a singular ``K`` and scores ``-inf``.
* ``grad_norm``: ``sum over weight tensors of ||dL/dW||_2`` for the cross-entropy loss on the batch.
* ``snip`` (Lee et al., ICLR 2019): connection sensitivity ``sum |W * dL/dW|``.
* ``params`` and ``macs`` (fvcore, ``mixnas.complexity``): the baselines any proxy must beat.

"Weights" are the parameters that receive weight decay in training (matrices and kernels; not norms,
biases, position embeddings or class tokens). Gradient-based proxies run in train mode (BatchNorm uses batch
statistics, as in the papers' code) with dropout and drop-path off, so every score is deterministic for a
given (architecture, seed, batch).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from mixnas.config import ArchConfig
from mixnas.data import DataSplits
from mixnas.errors import MixnasError, did_you_mean
from mixnas.layers import DropPath
from mixnas.network import build_model
from mixnas.train import NO_DECAY_NAMES

PROXIES = ("synflow", "naswot", "grad_norm", "snip", "params", "macs")
DATA_FREE = ("synflow", "params", "macs")


def weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight tensors the proxies sum over (ndim >= 2, not embeddings or tokens)."""
    return [(n, p) for n, p in model.named_parameters()
            if p.ndim >= 2 and not any(key in n for key in NO_DECAY_NAMES)]


def _train_without_noise(model: nn.Module) -> nn.Module:
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.Dropout, DropPath)):
            m.eval()
    return model


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """SynFlow on a float64 copy of ``model`` with absolute-valued parameters (``model`` is untouched)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    out = net(torch.ones(1, *input_shape, dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    for _, p in weights(net):
        if p.grad is not None:
            total += float((p.detach() * p.grad).abs().sum())
    return total


_ACTIVATIONS = {F.gelu, F.relu, F.silu, F.leaky_relu, F.elu, F.mish, torch.relu, torch._C._nn.gelu}


class _ActivationCodes(TorchFunctionMode):
    """Accumulate NASWOT's kernel from the sign pattern at the input of every activation function."""

    def __init__(self, batch: int):
        super().__init__()
        self.kernel = torch.zeros(batch, batch, dtype=torch.float64)
        self.units = 0

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _ACTIVATIONS and args and isinstance(args[0], Tensor) and args[0].ndim >= 2:
            x = args[0]
            codes = (x.detach().reshape(x.shape[0], -1) > 0).to(torch.float32)
            if codes.shape[0] == self.kernel.shape[0]:
                self.kernel += (codes @ codes.T + (1 - codes) @ (1 - codes).T).double()
                self.units += codes.shape[1]
        return func(*args, **kwargs)


def naswot(model: nn.Module, images: Tensor) -> float:
    """``log |det K|`` of the activation-pattern kernel over the batch (``-inf`` when K is singular)."""
    if images.shape[0] < 2:
        raise MixnasError("naswot needs a batch of at least 2 images")
    _train_without_noise(model)
    mode = _ActivationCodes(images.shape[0])
    with torch.no_grad(), mode:
        model(images)
    if mode.units == 0:
        raise MixnasError("naswot: the network calls no GELU / ReLU / SiLU activation, so it has no activation "
                          "pattern to score")
    sign, logdet = torch.linalg.slogdet(mode.kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def _loss_grads(model: nn.Module, images: Tensor, labels: Tensor) -> list[tuple[str, nn.Parameter]]:
    _train_without_noise(model)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return [(n, p) for n, p in weights(model) if p.grad is not None]


def grad_norm(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Sum over weight tensors of the L2 norm of the loss gradient."""
    try:
        return sum(float(p.grad.norm()) for _, p in _loss_grads(model, images, labels))
    finally:
        model.zero_grad(set_to_none=True)


def snip(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """SNIP connection sensitivity ``sum |W * dL/dW|``."""
    try:
        return sum(float((p.detach() * p.grad).abs().sum()) for _, p in _loss_grads(model, images, labels))
    finally:
        model.zero_grad(set_to_none=True)


def proxy_batch(data: DataSplits, batch_size: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """One seeded, normalised, un-augmented batch from the training split (never validation or test)."""
    from mixnas.data.loader import BatchLoader

    n = len(data.train)
    if n < 2:
        raise MixnasError(f"{data.name}: the training split has {n} images; proxies need at least 2")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[:batch_size]
    loader = BatchLoader(data.train, batch_size, mean=data.mean, std=data.std)
    return loader.normalise(data.train.images[idx]), data.train.labels[idx]


@dataclass(frozen=True)
class ProxyScores:
    """Scores of one architecture and the seconds each took, with what is needed to reproduce them."""

    name: str
    digest: str
    scores: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    arch: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        from mixnas.provenance import code_version

        return {"name": self.name, "digest": self.digest,
                "scores": {k: (v if math.isfinite(v) else str(v)) for k, v in self.scores.items()},
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()}, "seed": self.seed,
                "arch": self.arch, "code": code_version()}


def check_proxies(names: Sequence[str]) -> tuple[str, ...]:
    for n in names:
        if n not in PROXIES:
            raise MixnasError(f"unknown proxy {n!r}{did_you_mean(n, PROXIES)}; allowed: {', '.join(PROXIES)}")
    return tuple(names)


def score_model(model: nn.Module, arch: ArchConfig, images: Tensor | None, labels: Tensor | None,
                proxies: Sequence[str] = PROXIES, seed: int = 0) -> ProxyScores:
    """Compute ``proxies`` for ``model`` (built from ``arch`` with weights from ``seed``), timing each one."""
    proxies = check_proxies(proxies)
    needs_data = [p for p in proxies if p not in DATA_FREE]
    if needs_data and (images is None or labels is None):
        raise MixnasError(f"proxies {', '.join(needs_data)} need a batch of data")
    shape = (arch.input.in_channels, arch.input.image_size, arch.input.image_size)
    if "macs" in proxies:
        from mixnas.complexity import complexity  # imported before timing: fvcore's import is a one-off cost
    scores, seconds = {}, {}
    for name in proxies:
        t0 = time.perf_counter()
        if name == "synflow":
            value = synflow(model, shape)
        elif name == "naswot":
            value = naswot(model, images)
        elif name == "grad_norm":
            value = grad_norm(model, images, labels)
        elif name == "snip":
            value = snip(model, images, labels)
        elif name == "params":
            value = float(sum(p.numel() for p in model.parameters()))
        else:
            value = float(complexity(arch).macs)
        seconds[name] = time.perf_counter() - t0
        scores[name] = value
    return ProxyScores(arch.name, arch.digest(), scores, seconds, arch.to_dict(), seed)


def score_arch(arch: ArchConfig, images: Tensor | None, labels: Tensor | None, proxies: Sequence[str] = PROXIES,
               seed: int = 0) -> ProxyScores:
    """Build ``arch`` with weights from ``seed`` and score it (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, seed=seed)
        return score_model(model, arch, images, labels, proxies, seed)
