"""The tiny comparison studies' backbone, and a plugin token mixer for the vs-the-zoo tests: one parameter of every kind a Param can declare, an odd-kernel
rule, and a width-dependent default, written to a ``.py`` file as a user would."""

from __future__ import annotations

from pathlib import Path

SOURCE = '''
import torch
from torch import nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def _odd_kernel(params, ctx):
    return [("kernel", f"must be odd, found {params['kernel']}")] if params["kernel"] % 2 == 0 else []


@register_mixer("token", "{name}", params=[
    Param("kernel", int, 3, min=1, doc="depthwise kernel (odd)"),
    Param("scale", float, 1.0, min=0.0, max=10.0, doc="output scale"),
    Param("gate", bool, True, doc="sigmoid gate"),
    Param("pool", str, "mean", choices=("mean", "max"), doc="global token pooling"),
    Param("tag", str, "v1", doc="a free-text label"),
    Param("hidden", int, lambda ctx: 2 * ctx.dim, min=1, doc="MLP width (2 x dim)"),
], rules=[_odd_kernel], spatial=True)
class {cls}(nn.Module):
    """A depthwise convolution plus a pooled token, through a small MLP."""

    def __init__(self, ctx: MixerContext, kernel, scale, gate, pool, tag, hidden):
        super().__init__()
        self.grid = ctx.grid
        self.conv = nn.Conv2d(ctx.dim, ctx.dim, kernel, padding=kernel // 2, groups=ctx.dim)
        self.fc1, self.fc2 = nn.Linear(ctx.dim, hidden), nn.Linear(hidden, ctx.dim)
        self.scale, self.gate, self.pool = scale, gate, pool

    def forward(self, x):
        b, n, c = x.shape
        y = self.conv(x.transpose(1, 2).reshape(b, c, *self.grid)).flatten(2).transpose(1, 2)
        pooled = y.mean(1, keepdim=True) if self.pool == "mean" else y.amax(1, keepdim=True)
        out = self.fc2(F.gelu(self.fc1(y + pooled))) * self.scale
        return out * torch.sigmoid(y) if self.gate else out
'''
# a width-32 isotropic backbone on 16x16 digits (a 4x4 token grid): the tiny studies' base and task
TINY_BASE = """\
base:
  layout: isotropic
  input: {image_size: 16, in_channels: 1, num_classes: 10}
  stem: {patch_size: 4, dim: 32}
  stages:
    - {depth: 2, dim: 32, token_mixer: {name: attention, num_heads: 2},
       channel_mixer: {name: mlp, channel_hidden_dim: 64}}
task: {dataset: digits, image_size: 16}
"""
PARAMS = ("kernel", "scale", "gate", "pool", "tag", "hidden")


def write_plugin(folder: Path, name: str, cls: str) -> Path:
    """The plugin file ``folder/NAME.py`` registering the token mixer ``name`` (class ``cls``)."""
    path = folder / f"{name}.py"
    path.write_text(SOURCE.replace("{name}", name).replace("{cls}", cls))
    return path
