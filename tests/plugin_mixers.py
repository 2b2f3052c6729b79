"""A plugin file of token mixers for the contract tests: one that keeps the contract, and one per way to break it.

Each broken mixer breaks exactly one check (:mod:`mixnas.contract`), so a test can assert that this check, and
no other, fails. Written to a test's folder and loaded as a user's plugin would be.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = '''
import torch
from torch import nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("token", "lowrank", params=[Param("rank_ratio", float, 0.5, min=0.125, doc="rank / tokens")])
class LowRankTokenMixer(nn.Module):
    """Mixes tokens through a low-rank token MLP (keeps the contract)."""

    def __init__(self, ctx: MixerContext, rank_ratio: float):
        super().__init__()
        rank = max(1, round(ctx.num_tokens * rank_ratio))
        self.down = nn.Linear(ctx.num_tokens, rank)
        self.up = nn.Linear(rank, ctx.num_tokens)

    def forward(self, x):
        return self.up(F.gelu(self.down(x.transpose(1, 2)))).transpose(1, 2)


class Projection(nn.Module):
    """A channel projection: the base of the broken mixers (takes and ignores any declared parameter)."""

    def __init__(self, ctx: MixerContext, **params):
        super().__init__()
        self.proj = nn.Linear(ctx.dim, ctx.dim)

    def forward(self, x):
        return self.proj(x)


@register_mixer("token", "drops_a_token", params=[])
class DropsAToken(Projection):
    """Breaks the shape: one token fewer out than in."""

    def forward(self, x):
        return self.proj(x[:, 1:])


@register_mixer("token", "idle_param", params=[Param("scale", float, 1.0, min=0.0)])
class IdleParam(Projection):
    """Declares a parameter it never uses."""


@register_mixer("token", "cumulative", params=[])
class Cumulative(Projection):
    """Runs an operator fvcore has no MAC handle for (aten::cumsum)."""

    def forward(self, x):
        return self.proj(x.cumsum(1) / x.shape[1])


@register_mixer("token", "unused_weight", params=[])
class UnusedWeight(Projection):
    """Holds a parameter that no gradient reaches."""

    def __init__(self, ctx: MixerContext):
        super().__init__(ctx)
        self.gate = nn.Parameter(torch.ones(ctx.dim))


@register_mixer("token", "raises", params=[])
class Raises(Projection):
    """Raises in forward, on its own line."""

    def forward(self, x):
        raise ValueError("this mixer is not finished")


class NotRegistered(nn.Module):
    """A module the file defines without registering it."""
'''

BROKEN = {  # registered name -> (the one check it fails, words its detail must hold)
    "drops_a_token": ("shape", "(2, 64, 64) in, (2, 63, 64) out"),
    "idle_param": ("parameters", "scale=2.0 instead of 1.0 changes neither the parameter count nor the output"),
    "cumulative": ("fvcore", "fvcore cannot count aten::cumsum"),
    "unused_weight": ("gradients", "no gradient reaches gate"),
}


def write_plugin(folder: Path, name: str = "my_mixers.py") -> Path:
    path = folder / name
    path.write_text(SOURCE)
    return path
