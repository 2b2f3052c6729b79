"""ONNX export and its verification (:mod:`mixnas.onnx_io`): checked by onnx.checker, run by onnxruntime and
compared with PyTorch, written only when both pass."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from mixnas.onnx_io import OnnxExportError, OnnxUnavailable, export

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


class Affine(nn.Module):
    def __init__(self, drift: float = 0.0):
        super().__init__()
        self.linear, self.drift = nn.Linear(8, 4), drift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        # an export-only code path that computes something else, as a broken one would
        return out + self.drift if torch.onnx.is_in_onnx_export() else out


def example(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 8, generator=torch.Generator().manual_seed(0))


def test_a_faithful_export_is_written_and_matches_pytorch(tmp_path):
    exported = export(Affine(), example(), "x", "y", tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == exported.model
    assert exported.max_difference is not None and exported.max_difference < 1e-5
    assert "onnxruntime matches PyTorch" in exported.summary()


def test_an_export_that_computes_something_else_is_refused_and_not_written(tmp_path):
    with pytest.raises(OnnxExportError, match="differs from PyTorch's by up to 0.01"):
        export(Affine(drift=0.01), example(), "x", "y", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_the_batch_axis_is_dynamic(tmp_path):
    import onnxruntime

    exported = export(Affine(), example(2), "x", "y")
    session = onnxruntime.InferenceSession(exported.model, providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": example(5).numpy()})[0].shape == (5, 4)


def test_an_operator_without_an_onnx_form_fails_with_its_cause(tmp_path):
    class Unexportable(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sort(x, stable=True).values  # the legacy exporter has no stable sort

    with pytest.raises(OnnxExportError, match="torch.onnx.export failed") as info:
        export(Unexportable(), example(), "x", "y", tmp_path / "m.onnx")
    assert info.value.__cause__ is not None and not (tmp_path / "m.onnx").exists()


def test_without_onnxruntime_the_outputs_are_not_compared(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    exported = export(Affine(drift=1.0), example(), "x", "y")
    assert exported.max_difference is None and "outputs not compared" in exported.summary()


def test_without_onnx_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(OnnxUnavailable, match=r"pip install 'mixnas\[export\]'"):
        export(Affine(), example(), "x", "y")
