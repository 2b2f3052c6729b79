"""bench.gpu_check on a CPU: everything but the torch.cuda calls themselves.

The throughput helper runs the real trainer (``device="cpu"``, a tiny model, two steps an epoch); the search
part runs :class:`mixnas.search_driver.Search` with the check's settings and records, a fake trial body standing in for
Ray (which a GPU machine runs); the no-CUDA exit is checked in process and through ``python -m``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench import gpu_check as gc
from bench._report import write_section

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


# -- overlap of the trials ----------------------------------------------------------------------------------------


def test_common_overlap_and_the_most_trials_at_once():
    together = [(0.0, 10.0), (1.0, 9.0), (2.0, 12.0), (3.5, 8.0)]
    assert gc.common_overlap(together) == pytest.approx(4.5)
    assert gc.max_concurrency(together) == 4
    staggered = [(0.0, 5.0), (4.0, 9.0), (9.0, 12.0), (11.0, 20.0)]
    assert gc.common_overlap(staggered) < 0
    assert gc.max_concurrency(staggered) == 2  # one ending as another starts does not overlap it
    assert gc.common_overlap([]) == 0 and gc.max_concurrency([]) == 0


def _trial(number: int, state: str = "COMPLETE", **attrs):
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), user_attrs=attrs)


def test_trial_rows_are_the_trained_trials():
    trials = [_trial(3, status="completed", device="cuda", gpu_ids="0", worker_start=100.0, worker_time=130.0,
                     objectives={"top1": 80.5, "macs": 1e6}, fidelity=3),
              _trial(0, "PRUNED", status="infeasible", fidelity=0),
              _trial(1, status="completed", duplicate_of=3),
              _trial(2, "RUNNING"),
              _trial(4, "FAIL", status="failed", fail_reason="the trial's worker failed")]
    rows = gc.trial_rows(trials)
    assert rows[0] == gc.TrialRow(3, "COMPLETE", "cuda", "0", 100.0, 130.0, 80.5, 3)
    assert [r.number for r in rows] == [3, 4] and rows[1].start is None and rows[1].device == ""


def _rows(n: int = 4, device: str = "cuda", gpus: str = "0", gap: float = 1.0) -> list[gc.TrialRow]:
    return [gc.TrialRow(i, "COMPLETE", device, gpus, 100.0 + gap * i, 130.0 + i, 80.0, 3) for i in range(n)]


def test_search_checks_pass_only_when_all_trials_share_one_gpu_at_once():
    checks = gc.search_checks(_rows(), 4, "cuda")
    assert [ok for _, ok in checks] == [True] * 4
    assert "for 27.0 s (one common interval), at most 4 at a time" in checks[1][0]
    assert "Ray GPU ids 0" in checks[3][0]

    def failed(rows, device="cuda"):
        return [what for what, ok in gc.search_checks(rows, 4, device) if not ok]

    assert failed(_rows(gap=40.0)) == ["all 4 trials ran at once: no common interval, at most 1 at a time"]
    assert failed(_rows(3))[0] == "3 of 4 trials trained, 3 COMPLETE"
    mixed = _rows()
    mixed[2] = dataclasses.replace(mixed[2], device="cpu", gpu_ids="")
    assert [w.split(":")[0] for w in failed(mixed)] == ["every trial trained on cuda", "the trials shared one GPU"]
    two = _rows()
    two[1] = dataclasses.replace(two[1], gpu_ids="1")
    assert failed(two) == ["the trials shared one GPU: Ray GPU ids 0, 1"]
    untimed = _rows()
    untimed[0] = dataclasses.replace(untimed[0], start=None, end=None)
    assert "1 trial(s) recorded no start and end" in failed(untimed)[0]
    on_cpu = gc.search_checks(_rows(device="cpu", gpus=""), 4, "cpu")  # a dry run: no GPU check
    assert len(on_cpu) == 3 and all(ok for _, ok in on_cpu)


def test_the_search_settings_ask_tune_for_a_gpu_share_per_trial():
    s = gc.FULL
    on_gpu = gc.search_settings(s, "cuda", "runs/x", None, cpus=16)
    assert on_gpu.resources == {"cpu": 2.0, "gpu": 0.25} and on_gpu.concurrency == on_gpu.trials == 4
    assert on_gpu.scheduler == "none" and on_gpu.max_epochs == s.search_epochs
    assert on_gpu.train == {"fraction": s.search_fraction} and Path(on_gpu.space).is_file()
    assert gc.search_settings(s, "cpu", "runs/x", None, cpus=2).resources == {"cpu": 0.5, "gpu": 0.0}


def test_the_search_part_reads_placement_from_the_trial_records(tmp_path, monkeypatch):
    """Search with the check's settings; a fake trial body stands in for Ray's workers and reports what
    mixnas.ray_io.trainable reports about its placement (device_info, worker times)."""
    import ray

    from mixnas import ray_io
    from mixnas.checks import CandidateCheck, constraint_values
    from mixnas.trial import LocalRunner, Outcome

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the trial's view on a GPU worker
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    seen = []

    def body(config, report):
        seen.append(config["gpu"])
        row = {"epoch": 1, "val_top1": 50.0 + config["number"], "partial": 1.0}
        report(row)
        info = {"worker_start": 1000.0 + config["number"], "worker_time": 1100.0, "pid": 1, "node_id": "n",
                **ray_io.device_info(config)}
        return Outcome("completed", [row], "", 1.0, {k: v for k, v in info.items() if k in ray_io.PLACEMENT_KEYS})

    def runner(search):
        values = constraint_values(1000, 10**6, None, search.space.constraints)  # feasible, without fvcore's seconds
        search.checker = lambda arch: CandidateCheck(arch.digest(), 1000, 10**6, None, values)
        LocalRunner(search, body).run()

    s = dataclasses.replace(gc.QUICK, trials=4)
    text, checks = gc.search_part(s, "cuda", str(tmp_path / "run"), None, cpus=16, runner=runner)
    assert seen == [0.25] * 4
    assert [ok for _, ok in checks] == [True] * 4, checks
    assert '`{"cpu": 2, "gpu": 0.25}`' in text and text.count("| COMPLETE | cuda | 0 |") == 4


def test_a_trial_records_its_device_and_gpu_ids(monkeypatch):
    import ray

    from mixnas.ray_io import STATUS_KEY, device_info, outcome_of
    from mixnas.trial import trial_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trial_device({"gpu": 0.25}) == "cpu"  # no device visible: train on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trial_device({"gpu": 0.25}) == "cuda" and trial_device({"gpu": 0.0}) == trial_device({}) == "cpu"
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0, 1])
    assert device_info({"gpu": 1.0}) == {"device": "cuda", "gpu_ids": "0,1"}
    last = {STATUS_KEY: "completed", "device": "cuda", "gpu_ids": "0", "pid": 7, "node_id": "n",
            "worker_start": 1.0, "worker_time": 2.0, "trial_wall_s": 1.0, "val_top1": 50.0}
    outcome = outcome_of([{"epoch": 1}], last, False, 2, "x")
    assert outcome.info == {"node_id": "n", "pid": 7, "worker_start": 1.0, "worker_time": 2.0, "device": "cuda",
                            "gpu_ids": "0"}


# -- throughput and latency, run on the CPU ----------------------------------------------------------------------


def test_throughput_runs_the_trainer_for_a_warm_up_and_timed_epochs():
    from mixnas.data import load_dataset
    from mixnas.zoo.mlp_mixer import mixer_arch

    data = gc.fit_subset(load_dataset("digits", None, 8, 1, 0.1, 0), 16, 3, n_train=2 * 8, n_val=8)
    assert (data.image_size, data.in_channels, len(data.train), len(data.val), data.test) == (16, 3, 16, 8, None)
    arch = mixer_arch("tiny", patch_size=4, dim=16, depth=1, token_hidden_dim=8, channel_hidden_dim=32, image_size=16,
                      in_channels=3, num_classes=10)
    results = []
    for bf16 in (False, True):
        r = gc.train_throughput(arch, data, device="cpu", bf16=bf16, steps=2, rounds=2, batch_size=8)
        assert r.status == "completed" and len(r.per_epoch) == 2 and r.peak_gib is None
        assert r.images_per_s == statistics.median(r.per_epoch) > 0 and r.warmup_images_per_s > 0
        results.append(r)
    with pytest.raises(ValueError, match="not steps x batch"):
        gc.train_throughput(arch, data, device="cpu", bf16=False, steps=3, rounds=1, batch_size=8)
    text, checks = gc.render_throughput(dataclasses.replace(gc.QUICK, model="tiny", steps=2, rounds=2, batch_size=8),
                                        1000, 2_000_000, results, "cpu")
    assert "bf16 / fp32: **" in text and "| fp32 | completed |" in text and "then 2 timed epochs of 2 steps" in text
    assert [ok for _, ok in checks] == [True, True]


def test_latency_rows_through_measure_latency():
    rows = gc.latency_rows(["examples/strip_mlp_1m_fmnist.yaml"], [1, 2], ["float32"], "cpu", None, 1, 2)
    assert [(r.image_size, r.batch_size, r.dtype, r.runs) for r in rows] == [(32, 1, "float32", 2), (32, 2, "float32", 2)]
    text, checks = gc.render_latency(gc.QUICK, rows, "cpu")
    assert text.count("| examples/strip_mlp_1m_fmnist.yaml | 32 |") == 2 and checks[0][1]


# -- the section and the command ----------------------------------------------------------------------------------


def test_the_section_names_the_command_parts_and_checks(tmp_path):
    text = gc.render("PYTHONPATH=. python -m bench.gpu_check", 12.3, ["GPU: X.", "", "CPU: Y."],
                     [("Latency", "| a |"), ("Training throughput", "**Failed**: `E: x`")], [("a", True), ("b", False)])
    assert text.startswith("Command: `PYTHONPATH=. python -m bench.gpu_check` (12 s). GPU: X. CPU: Y.\n")
    assert "### Latency\n\n| a |" in text and "- [x] a\n- [ ] b" in text
    path = tmp_path / "BENCHMARKS.md"
    write_section(gc.TITLE, text, path)
    write_section(gc.TITLE, text, path)
    assert path.read_text().count(f"<!-- BEGIN {gc.TITLE} -->") == 1


def test_a_failure_is_one_short_line():
    err = RuntimeError("Caught: 4 worker(s) were killed\n" + "details " * 100)
    assert gc.failure(err) == "RuntimeError: Caught: 4 worker(s) were killed"
    assert len(gc.failure(ValueError("`x` " * 200))) == 300 and "`" not in gc.failure(ValueError("`x`"))


def test_a_dry_run_writes_the_section(tmp_path, capsys):
    path = tmp_path / "BENCHMARKS.md"
    assert gc.main(["--device", "cpu", "--quick", "--parts", "latency", "--benchmarks", str(path)]) == 0
    text = path.read_text()
    assert "Command: `PYTHONPATH=. python -m bench.gpu_check --device cpu --quick --parts latency --benchmarks" in text
    assert "### Latency" in text and "- [x] latency measured on cpu for 4 settings" in text and "CPU: " in text


# -- without CUDA -------------------------------------------------------------------------------------------------


def test_device_problems(monkeypatch):
    assert gc.cuda_problem("cpu") is None
    assert "not a device name" in gc.cuda_problem("gpu0") and "not a CUDA device" in gc.cuda_problem("meta")
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in gc.cuda_problem("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "torch.cuda.is_available() is False" in gc.cuda_problem("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gc.cuda_problem("cuda") is None and gc.cuda_problem("cuda:0") is None
    assert gc.cuda_problem("cuda:1") == "cuda:1 does not exist: torch sees 1 CUDA device(s)"


def test_without_cuda_it_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = tmp_path / "BENCHMARKS.md"
    assert gc.main(["--benchmarks", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("no CUDA device: ") and err.count("\n") == 1 and not path.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_the_command_exits_2_without_a_traceback():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--no-write"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("no CUDA device: ") and proc.stderr.count("\n") == 1
