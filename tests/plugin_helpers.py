"""A user's mixer written as a plugin file outside the package, shared by the plugin tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

MIXER = '''
from torch import nn
from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("token", "{name}", params=[Param("scale", float, 1.0, min=0.0)])
class {cls}(nn.Module):
    """A token mixer that scales the mean token."""

    def __init__(self, ctx: MixerContext, scale: float):
        super().__init__()
        self.scale = scale
        self.proj = nn.Linear(ctx.dim, ctx.dim)

    def forward(self, x):
        return self.proj(x.mean(1, keepdim=True).expand_as(x)) * self.scale
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def write_mixer(folder: Path, file: str = "mean_mixer.py", name: str = "plug_mean", cls: str = "MeanMixer") -> Path:
    """A plugin file registering the token mixer ``name`` (one parameter, ``scale``)."""
    return write(folder, file, MIXER.format(name=name, cls=cls))
