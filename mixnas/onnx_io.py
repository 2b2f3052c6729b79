"""ONNX export and its verification: the one module that calls ``torch.onnx`` and imports ``onnx`` and
``onnxruntime`` (``mixnas export`` and ``mixnas check-mixer``'s ``onnx`` check use it).

The exporter is the legacy TorchScript one (``dynamo=False``): it needs no extra package and handles every
built-in family. A written model is checked by ``onnx.checker`` and, when ``onnxruntime`` is installed (the
``export`` and ``test`` extras), run on the same input as PyTorch: an export that is well formed but computes
something else (an export-only code path that drifted, an operator the exporter mistranslates) is caught
there, which the checker cannot do.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mixnas.errors import MixnasError

#: onnxruntime's float32 kernels reorder sums: differences of a few 1e-6 relative are rounding, not a bug
RTOL, ATOL = 1e-4, 1e-5


class OnnxUnavailable(MixnasError):
    """The ``onnx`` package is not installed."""


class OnnxExportError(MixnasError):
    """The exporter refused the module, ``onnx.checker`` rejected the model, or onnxruntime disagrees."""


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the serialised model, its node count and, when onnxruntime ran it, the
    largest absolute difference from PyTorch's output (None without onnxruntime)."""

    model: bytes
    nodes: int
    max_difference: float | None

    def summary(self) -> str:
        """``exported (legacy exporter, 191 nodes), passes onnx.checker, onnxruntime matches PyTorch
        (largest difference 2.4e-07)``."""
        runtime = (", onnxruntime not installed: outputs not compared" if self.max_difference is None
                   else f", onnxruntime matches PyTorch (largest difference {self.max_difference:.1e})")
        return f"exported (legacy exporter, {self.nodes} nodes), passes onnx.checker{runtime}"


def export(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str,
           path: str | Path | None = None) -> Exported:
    """Export ``module`` (in eval mode) traced on ``example``, with a dynamic batch axis; check it with
    ``onnx.checker``; compare onnxruntime's output with PyTorch's on ``example`` when onnxruntime is installed;
    write it to ``path`` when given (after the checks pass: a failed export leaves no file)."""
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailable("ONNX export needs the onnx package: pip install 'mixnas[export]'") from None
    module = module.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), _quiet_stderr():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
            torch.onnx.export(module, (example,), buffer, input_names=[input_name], output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, dynamo=False)
    except Exception as err:  # noqa: BLE001 - why it cannot be exported, on one line
        raise OnnxExportError(f"torch.onnx.export failed: {_first_line(err)}") from err  # its frames locate it
    data = buffer.getvalue()
    model = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise OnnxExportError(f"onnx.checker: {_first_line(err)}") from None
    difference = _runtime_difference(module, data, example, input_name)
    if path is not None:
        Path(path).write_bytes(data)
    return Exported(data, len(model.graph.node), difference)


def _runtime_difference(module: nn.Module, data: bytes, example: torch.Tensor, input_name: str) -> float | None:
    """The largest absolute difference between onnxruntime's and PyTorch's outputs on ``example`` (None when
    onnxruntime is not installed); a difference beyond :data:`RTOL` / :data:`ATOL` raises."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(example).float().numpy()
    got = session.run(None, {input_name: example.numpy()})[0]
    if got.shape != expected.shape:
        raise OnnxExportError(f"onnxruntime returned shape {tuple(got.shape)}, PyTorch {tuple(expected.shape)}")
    difference = float(abs(got - expected).max()) if got.size else 0.0
    tolerance = ATOL + RTOL * float(abs(expected).max() if expected.size else 0.0)
    if not difference <= tolerance:  # NaN fails too
        raise OnnxExportError(f"onnxruntime's output differs from PyTorch's by up to {difference:.3g} (allowed "
                              f"{tolerance:.3g}): the exported model computes something else")
    return difference


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: on a failure the legacy exporter dumps its whole TorchScript graph
    there from C++ (torch 2.13 turns its log on whatever ``verbose`` says)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
