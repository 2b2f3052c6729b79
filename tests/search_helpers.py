"""Small spaces and fake trial bodies shared by the search tests."""

from __future__ import annotations

import math
from pathlib import Path

from mixnas.config import ArchConfig
from mixnas.trial import Outcome

TINY_SPACE = """
name: tiny
task:
  dataset: digits
  image_size: 16
  in_channels: 1
  num_classes: 10
  objectives: [top1:max, macs:min]
  train: {epochs: 3, batch_size: 64}
constraints:
  max_macs: %(max_macs)s
arch:
  layout: isotropic
  stem: {patch_size: 4, dim: {choice: [8, 16, 24]}}
  head: {norm: layernorm, pool: mean}
  stages:
    count: 1
    depth: {choice: [1, 2]}
    token_mixer:
      mixer: {token_hidden_dim: 8}
    channel_mixer:
      mlp: {channel_hidden_dim: {ratio: {choice: [1, 2]}}}
"""


# Other token mixers for design-space comparisons: strip only, and a conditional space (mixer or strip).
TOKEN_MIXERS = {
    "mixer": "      mixer: {token_hidden_dim: 8}\n",
    "strip": "      strip: {strip_width: {choice: [1, 3]}, patch_groups: {choice: [1, 2]}}\n",
    "mixed": ("      mixer: {token_hidden_dim: {choice: [4, 8]}}\n"
              "      strip: {strip_width: {choice: [1, 3]}, patch_groups: {choice: [1, 2]}}\n"),
}


def write_space(folder: Path, max_macs: str = "10M", token_mixer: str = "mixer") -> Path:
    """A tiny space on 16x16 digits; ``token_mixer``: ``mixer`` (the default), ``strip`` or ``mixed``."""
    path = folder / ("tiny.yaml" if token_mixer == "mixer" else f"tiny_{token_mixer}.yaml")
    text = TINY_SPACE % {"max_macs": max_macs}
    if token_mixer != "mixer":
        text = text.replace("name: tiny\n", f"name: tiny_{token_mixer}\n").replace(
            TOKEN_MIXERS["mixer"], TOKEN_MIXERS[token_mixer])
    path.write_text(text)
    return path


def fake_top1(arch: ArchConfig, epoch: int) -> float:
    """Deterministic: wider and deeper is better, and every epoch adds a bit."""
    s = arch.stages[0]
    return 40.0 + s.dim * 0.5 + s.depth * 3 + dict(s.channel_mixer.params).get("channel_hidden_dim", 0) * 0.05 + 5 * epoch


def fake_body(calls: list | None = None, nan_dims: tuple[int, ...] = ()):
    def body(config, report):
        arch = ArchConfig.from_dict(config["arch"])
        if calls is not None:
            calls.append(config["digest"])
        curve = []
        for epoch in range(1, config["train"]["epochs"] + 1):
            top1 = math.nan if arch.stages[0].dim in nan_dims else fake_top1(arch, epoch)
            row = {"epoch": epoch, "val_top1": top1, "partial": 1.0}
            curve.append(row)
            if not report(row):
                return Outcome("stopped", curve, f"stopped after epoch {epoch}", 0.01)
        return Outcome("completed", curve, "", 0.01)
    return body
