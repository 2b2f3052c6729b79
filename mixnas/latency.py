"""Inference latency of a model or architecture, whole or stage by stage.

Protocol
    * The model is in eval mode and every run is inside ``torch.inference_mode()``.
    * ``torch.set_num_threads(threads)`` is fixed for the whole measurement and restored afterwards; the
      default is torch's current thread count, and the count used is reported in :attr:`Latency.threads`.
    * The input is a fixed random batch ``(batch_size, channels, image_size, image_size)`` made once on
      the device; ``dtype="bfloat16"`` runs the float32 model under ``torch.autocast`` (CPU or CUDA).
    * ``warmup`` untimed runs, then timed runs, each timed alone with ``time.perf_counter``; on CUDA
      ``torch.cuda.synchronize()`` is called before each clock read. Timed runs continue until at least
      ``repeats`` runs are done and, if ``min_time_s`` is set, at least that much time has been timed.
      The synchronisation is of the measured device (``cuda:1`` is waited for even when another device is
      torch's current one).
    * The result is the median with the interquartile range (``q1``, ``q3``; inclusive quartiles) in
      milliseconds per batch, the number of timed runs, and the settings it was measured under.

Per-stage latency (:func:`stage_latencies`) captures each part's input with one forward pass, then times
each part separately on its captured input under the same protocol. The parts are named like
:attr:`mixnas.complexity.Complexity.rows`: ``stem`` (patch embedding, stem norm, class token, position
embedding), ``stages.i`` (patch merging and blocks) and ``head`` (final norm, pooling, classifier). There
is no ``fusion`` row: Strip-MLP's cross-stage fusion convolutions are timed inside the stage whose merged
input they carry, and the additions of their results inside the stage they feed. The parts run the same
code path as :meth:`mixnas.network.Network.forward` (a test checks that chaining them gives its output).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.network import Network, build_model

__all__ = ["DTYPES", "Latency", "measure_latency", "stage_latencies"]

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Latency:
    """Milliseconds per batch: the median and quartiles of ``runs`` timed runs, and how it was measured."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    runs: int
    batch_size: int
    device: str
    threads: int
    dtype: str

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "iqr_ms": self.iqr_ms}


# -- settings ---------------------------------------------------------------------------------------------


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MixnasError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MixnasError(f"device {device!r} requested but CUDA is not available to torch "
                              f"{torch.__version__}; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MixnasError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise MixnasError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def _check(batch_size: int, threads: int | None, dtype: str, warmup: int, repeats: int,
           min_time_s: float) -> None:
    if dtype not in DTYPES:
        raise MixnasError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    for name, value, low in (("batch_size", batch_size, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MixnasError(f"{name} must be an integer >= {low}, found {value!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise MixnasError(f"threads must be a positive integer, found {threads!r}")
    if not min_time_s >= 0:
        raise MixnasError(f"min_time_s must be >= 0, found {min_time_s!r}")


@contextlib.contextmanager
def _settings(dev: torch.device, threads: int | None, dtype: str):
    """Fix the thread count (restored afterwards), inference mode and the autocast for ``dtype``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(previous if threads is None else threads)
    try:
        amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == "bfloat16"
               else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _time(fn: Callable[[], Any], dev: torch.device, warmup: int, repeats: int, min_time_s: float) -> list[float]:
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    total = 0.0
    while len(times) < repeats or total < min_time_s:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        total += elapsed
    return times


def _summary(times: list[float], batch_size: int, dev: torch.device, threads: int, dtype: str) -> Latency:
    ms = [t * 1e3 for t in times]
    median = statistics.median(ms)
    q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else (median, median, median)
    return Latency(median, q1, q3, len(ms), batch_size, str(dev), threads, dtype)


# -- models and inputs -------------------------------------------------------------------------------------


def _model_and_input(target: ArchConfig | nn.Module, batch_size: int, dev: torch.device,
                     image_size: int | None) -> tuple[nn.Module, Tensor]:
    if isinstance(target, ArchConfig):
        if image_size is not None:
            target = target.with_task(image_size=image_size)
        model: nn.Module = build_model(target)
    elif isinstance(target, nn.Module):
        model = target
    else:
        raise TypeError(f"expected an ArchConfig or an nn.Module, got {type(target).__name__}")
    if isinstance(model, Network):
        channels, size = model.arch.input.in_channels, model.arch.input.image_size
        if image_size is not None and image_size != size:
            raise MixnasError(f"this network was built for {size}x{size} inputs, not {image_size}x{image_size}; "
                              "pass its ArchConfig to measure another input size")
    else:
        if image_size is None:
            raise MixnasError("measure_latency needs image_size for a module that is not a mixnas Network")
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels, size = (conv.in_channels if conv is not None else 3), image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, channels, size, size, generator=generator).to(dev)
    return model.to(dev), images


@contextlib.contextmanager
def _eval(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def measure_latency(target: ArchConfig | nn.Module, *, batch_size: int = 1, device: str = "cpu",
                    image_size: int | None = None, threads: int | None = None, dtype: str = "float32",
                    warmup: int = 10, repeats: int = 30, min_time_s: float = 0.0) -> Latency:
    """Latency of one forward pass of ``target`` under the protocol in the module docstring.

    ``target`` is an :class:`ArchConfig` (built with :func:`build_model`, input size from the config unless
    ``image_size`` overrides it) or a module, which is moved to ``device`` in place and put back in its
    training mode afterwards. A module that is not a mixnas ``Network`` needs ``image_size``; its input
    channels are those of its first ``Conv2d`` (3 without one).
    """
    _check(batch_size, threads, dtype, warmup, repeats, min_time_s)
    dev = _device(device)
    model, images = _model_and_input(target, batch_size, dev, image_size)
    with _eval(model), _settings(dev, threads, dtype) as used_threads:
        times = _time(lambda: model(images), dev, warmup, repeats, min_time_s)
    return _summary(times, batch_size, dev, used_threads, dtype)


# -- per-stage --------------------------------------------------------------------------------------------

_State = tuple[Tensor, dict[int, list[Tensor]]]  # tokens, and fusion contributions waiting for later stages


def _parts(model: Network) -> list[tuple[str, Callable[[Any], Any]]]:
    """``Network.forward`` cut into the parts named like ``Complexity.rows`` (without ``fusion``)."""

    def stem(images: Tensor) -> _State:
        return model.forward_stem(images), {}

    def stage(i: int) -> Callable[[_State], _State]:
        def run(state: _State) -> _State:
            pending = {k: list(v) for k, v in state[1].items()}  # the captured input stays untouched
            return model.forward_stage(i, state[0], pending), pending
        return run

    def head(state: _State) -> Tensor:
        return model.forward_head(state[0])

    return [("stem", stem)] + [(f"stages.{i}", stage(i)) for i in range(len(model.stages))] + [("head", head)]


def stage_latencies(arch: ArchConfig, *, batch_size: int = 1, device: str = "cpu", image_size: int | None = None,
                    threads: int | None = None, dtype: str = "float32", warmup: int = 10, repeats: int = 30,
                    min_time_s: float = 0.0) -> list[tuple[str, Latency]]:
    """Latency of each part of ``build_model(arch)`` (``stem``, ``stages.i``, ``head``), in order.

    Each part is timed on its own input, captured by one forward pass; see the module docstring.
    """
    if not isinstance(arch, ArchConfig):
        raise TypeError(f"stage_latencies takes an ArchConfig, got {type(arch).__name__}")
    _check(batch_size, threads, dtype, warmup, repeats, min_time_s)
    dev = _device(device)
    model, images = _model_and_input(arch, batch_size, dev, image_size)
    parts = _parts(model)
    rows = []
    with _eval(model), _settings(dev, threads, dtype) as used_threads:
        inputs, value = [], images
        for _, part in parts:
            inputs.append(value)
            value = part(value)
        for (name, part), captured in zip(parts, inputs):
            times = _time(lambda part=part, captured=captured: part(captured), dev, warmup, repeats, min_time_s)
            rows.append((name, _summary(times, batch_size, dev, used_threads, dtype)))
    return rows
