"""Latency measurement: sane statistics, the thread-count contract, devices, dtypes and per-stage parts."""

from __future__ import annotations

import time

import pytest
import torch
from _archs import tiny_mixer, tiny_vit
from _archs import tiny_pyramid as _tiny_pyramid
from torch import nn

import mixnas.latency as lat
from mixnas.complexity import complexity
from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.network import build_model

FAST = {"warmup": 1, "repeats": 5}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path / "cache"))


def tiny_pyramid() -> ArchConfig:
    return _tiny_pyramid(stages=4)


def _sane(result: lat.Latency, runs: int = 5) -> None:
    assert 0 < result.q1_ms <= result.median_ms <= result.q3_ms
    assert result.iqr_ms == pytest.approx(result.q3_ms - result.q1_ms)
    assert result.runs == runs


def test_latency_of_an_architecture_is_sane():
    result = lat.measure_latency(tiny_mixer(), batch_size=2, **FAST)
    _sane(result)
    assert (result.batch_size, result.device, result.dtype) == (2, "cpu", "float32")
    assert result.threads == torch.get_num_threads()
    assert result.to_dict()["iqr_ms"] == result.iqr_ms


def test_bfloat16_runs_under_autocast():
    result = lat.measure_latency(tiny_vit(), dtype="bfloat16", **FAST)
    _sane(result)
    assert result.dtype == "bfloat16"


def test_the_thread_count_is_fixed_and_restored():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    result = lat.measure_latency(tiny_mixer(), threads=wanted, **FAST)
    assert result.threads == wanted
    assert torch.get_num_threads() == before


class Broken(nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def test_the_thread_count_is_restored_when_the_model_fails():
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="boom"):
        lat.measure_latency(Broken(), image_size=8, threads=1 if before != 1 else 2, **FAST)
    assert torch.get_num_threads() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_cuda_is_a_clear_user_error():
    with pytest.raises(MixnasError, match="CUDA is not available"):
        lat.measure_latency(tiny_mixer(), device="cuda", **FAST)
    with pytest.raises(MixnasError, match="CUDA is not available"):
        lat.stage_latencies(tiny_mixer(), device="cuda:0", **FAST)


@pytest.mark.parametrize("kwargs", [{"device": "mps"}, {"device": "nonsense"}, {"dtype": "float16"},
                                    {"repeats": 0}, {"warmup": -1}, {"batch_size": 0}, {"threads": 0},
                                    {"min_time_s": -1.0}])
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(MixnasError):
        lat.measure_latency(tiny_mixer(), **{**FAST, **kwargs})


class Sleeper(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        self.calls += 1
        time.sleep(0.002)
        return self.conv(x)


def test_min_time_extends_the_timed_runs_and_modules_keep_their_mode():
    model = Sleeper().train()
    result = lat.measure_latency(model, image_size=4, warmup=2, repeats=1, min_time_s=0.02)
    assert result.runs >= 2 and model.calls == 2 + result.runs
    assert result.median_ms >= 2.0
    assert model.training


def test_a_plain_module_needs_an_image_size():
    with pytest.raises(MixnasError, match="image_size"):
        lat.measure_latency(Sleeper(), **FAST)


def test_image_size_overrides_the_architecture_but_not_a_built_network():
    _sane(lat.measure_latency(tiny_mixer(), image_size=16, **FAST))
    network = build_model(tiny_mixer())
    _sane(lat.measure_latency(network, image_size=32, **FAST))
    with pytest.raises(MixnasError, match="built for 32x32"):
        lat.measure_latency(network, image_size=16, **FAST)


# -- per stage ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [tiny_mixer, tiny_vit, tiny_pyramid])
def test_the_parts_chain_to_the_models_forward(make):
    model = build_model(make()).eval()
    images = torch.randn(2, 3, model.arch.input.image_size, model.arch.input.image_size)
    value = images
    with torch.inference_mode():
        for _, part in lat._parts(model):
            value = part(value)
        assert torch.allclose(value, model(images), atol=1e-5)


def test_stage_latencies_are_named_like_the_complexity_rows():
    arch = tiny_pyramid()
    rows = lat.stage_latencies(arch, **FAST)
    assert [name for name, _ in rows] == [r.name for r in complexity(arch).rows if r.name != "fusion"]
    for _, result in rows:
        _sane(result)


def test_stage_latencies_restore_threads():
    before = torch.get_num_threads()
    rows = lat.stage_latencies(tiny_vit(), threads=1 if before != 1 else 2, dtype="bfloat16", **FAST)
    assert torch.get_num_threads() == before
    assert {r.threads for _, r in rows} == {1 if before != 1 else 2}
    assert [name for name, _ in rows] == ["stem", "stages.0", "head"]


def test_cuda_timing_synchronises_the_measured_device(monkeypatch):
    """On CUDA every clock read waits for the measured device (cuda:1 too, whichever device is current)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    times = lat._time(lambda: None, torch.device("cuda", 1), warmup=2, repeats=3, min_time_s=0.0)
    assert len(times) == 3 and calls == [torch.device("cuda", 1)] * 6  # before and after each timed run
    calls.clear()
    lat._time(lambda: None, torch.device("cpu"), warmup=1, repeats=2, min_time_s=0.0)
    assert calls == []
