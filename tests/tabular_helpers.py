"""A synthetic mixnas-bench table for tests: a small discrete space on digits and made-up but
deterministic curves, written through the table's own writer (no training)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import yaml

from mixnas.space import load_space
from mixnas.tabular import (
    BUILD_FILE,
    SPACE_FILE,
    TABLE_FILE,
    BuildSettings,
    append_record,
    plan_jobs,
    space_archs,
    train_config,
)

SPACE = """
name: tiny_bench
task: {dataset: digits, image_size: 16, in_channels: 1, num_classes: 10, objectives: [top1:max, macs:min],
       train: {epochs: 4, fraction: 0.5, val_fraction: 0.2}}
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: {choice: [16, 32]}}
  stages:
    count: 1
    depth: {choice: [1, 2]}
    token_mixer:
      mixer: {token_hidden_dim: {choice: [8, 16]}}
      resmlp: {}
    channel_mixer:
      mlp: {channel_hidden_dim: {ratio: {choice: [2, 4]}}}
"""


def write_space(folder: Path) -> Path:
    path = folder / "tiny_bench.yaml"
    path.write_text(SPACE)
    return path


def fake_record(job: Any, train: dict[str, Any], params: int, macs: int, rng: random.Random) -> dict[str, Any]:
    """Accuracy grows with log-MACs (with noise per architecture and seed) and with the epoch."""
    quality = 60 + 6 * math.log(macs) / math.log(10) + rng.gauss(0, 2)
    curve = []
    for e in range(1, job.epochs + 1):
        top1 = quality * (1 - 0.5 ** e) * (1 + 0.05 * (job.fraction - 0.5)) + rng.gauss(0, 0.3)
        curve.append({"epoch": e, "train_loss": 2 / e, "train_top1": top1, "val_loss": 2.1 / e, "val_top1": top1,
                      "train_time_s": macs / 1e5 * job.fraction, "eval_time_s": 0.1})
    return {"key": job.key, "setting": job.setting, "digest": job.digest, "seed": job.seed,
            "arch": job.arch.to_dict(), "train": train, "params": params, "macs": macs, "status": "completed",
            "reason": "", "curve": curve, "wall_time_s": sum(c["train_time_s"] for c in curve),
            "measured": {"latency_ms": macs / 1e6 + 0.05, "latency_iqr_ms": 0.01,
                         "proxies": {"synflow": math.log(params) + rng.gauss(0, 1), "naswot": rng.random(),
                                     "grad_norm": rng.random(), "snip": params / 1e4}} if job.setting == "table" else {},
            "worker": {"pid": 1}, "code": "test"}


def write_table(folder: Path, drop: int = 0, **settings: Any) -> Path:
    """A complete synthetic table of the tiny space in ``folder/table`` (``drop``: leave out that many
    architectures' table records)."""
    from mixnas.complexity import complexity

    space_path = write_space(folder)
    space = load_space(space_path)
    s = BuildSettings(space=str(space_path), **{"noise_archs": 4, "long_archs": 6, **settings})
    out = folder / "table"
    out.mkdir()
    (out / SPACE_FILE).write_text(SPACE)
    (out / BUILD_FILE).write_text(yaml.safe_dump({"settings": s.to_dict(), "space_file": SPACE_FILE}))
    rng = random.Random(0)
    jobs = plan_jobs(s, space_archs(space))
    skipped = {j.digest for j in jobs if j.setting == "table"}
    skipped = set(sorted(skipped)[:drop])
    for job in jobs:
        if job.setting == "table" and job.digest in skipped:
            continue
        cost = complexity(job.arch)
        append_record(out / TABLE_FILE, fake_record(job, train_config(s, space, job), cost.params, cost.macs, rng))
    return out
