"""RaftMLP's token mixer: serial vertical and horizontal raft-token mixing.

Paper: Tatsunami and Taki, "RaftMLP: How Much Can Be Done Without Attention and with Less Spatial
Locality?", ACCV 2022 (arXiv 2108.04384). Official code: github.com/okojoalg/raft-mlp, ``libs/modules.py``
(``SerialPermutedLevel``, ``PermutedBlock``, ``RaftShrink``, ``RaftExpansion``; token mixing type
``ser_pm``). With default parameters this module has the official parameters one for one and computes the
same function (up to the order of the LayerNorm affine weights, below).

On an ``H x W`` grid of width ``C``, the channels form ``C / r`` rafts of ``r = raft_size`` channels
(channel ``c = i * (C / r) + j`` belongs to raft ``j``, as the official ``(chw co)`` split). Each raft
mixes a column's ``r x H`` values, then a row's ``r x W`` values, with MLPs shared by all rafts and all
columns (rows)::

    x1 = x  + V(LayerNorm(x))     V: per (raft, column), Linear(rH, e rH) -> GELU -> Linear(e rH, rH)
    x2 = x1 + H(LayerNorm(x1))    H: per (raft, row),    Linear(rW, e rW) -> GELU -> Linear(e rW, rW)

with ``e = token_expansion`` (official ``token_expansion_factor`` 2). Both residual steps are inside this
mixer, which normalises its own input (``own_norm``: the block gives it ``x`` and adds ``x`` back, so the
block computes exactly ``x2``); the block's channel branch is the official ``ChannelBlock``.

Deviations from the official code:

* the official LayerNorms see the channels in ``(co, r)`` order (its ``PermutedBlock`` rearranges before
  normalising), these in the tokens' ``(r, co)`` order: the same function with the affine weights
  permuted (official weight index ``j * r + i`` is index ``i * C / r + j`` here);
* stochastic depth drops the vertical and horizontal steps together (one draw per block branch); the
  official draws for each step;
* LayerNorm eps is PyTorch's default 1e-5, as official;
* the official resizes its grid bicubically when an input does not match the size it was built for;
  mixnas fixes the grid when the model is built, so that path does not exist here;
* linear layers are initialised by the backbone (truncated normal std 0.02, zero bias) where the official
  keeps PyTorch's defaults.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def _raft_divides(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if ctx.dim % params["raft_size"]:
        return [("raft_size", f"width {ctx.dim} is not divisible by raft_size={params['raft_size']}")]
    return []


class _RaftMLP(nn.Module):
    """The two-layer MLP along one axis of the rafts: ``length -> expansion x length -> length``."""

    def __init__(self, length: int, expansion: int):
        super().__init__()
        self.fc1 = nn.Linear(length, expansion * length)
        self.fc2 = nn.Linear(expansion * length, length)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


# (B, H, W, r, C/r) -> rows of the vertical (B, C/r, W, r, H) and horizontal (B, C/r, H, r, W) mixing
_VERTICAL, _VERTICAL_BACK = (0, 4, 2, 3, 1), (0, 4, 2, 3, 1)
_HORIZONTAL, _HORIZONTAL_BACK = (0, 4, 1, 3, 2), (0, 2, 4, 3, 1)


@register_mixer("token", "raft", params=[
    Param("raft_size", int, 2, min=1, doc="channels per raft, mixed together along a column / row (official 2)"),
    Param("token_expansion", int, 2, min=1, doc="hidden width of the raft MLPs / their input (official 2)"),
], rules=[_raft_divides], spatial=True, own_norm=True)
class RaftTokenMixer(nn.Module):
    """RaftMLP serial raft-token mixing: vertical, then horizontal, each a normalised residual MLP."""

    def __init__(self, ctx: MixerContext, raft_size: int, token_expansion: int):
        super().__init__()
        (h, w), c = ctx.grid, ctx.dim
        self.grid, self.raft = ctx.grid, raft_size
        self.norm_v = nn.LayerNorm(c)
        self.vertical = _RaftMLP(raft_size * h, token_expansion)
        self.norm_h = nn.LayerNorm(c)
        self.horizontal = _RaftMLP(raft_size * w, token_expansion)

    def _mix(self, y: Tensor, mlp: _RaftMLP, order: tuple[int, ...], back: tuple[int, ...]) -> Tensor:
        b, n, c = y.shape
        rows = y.view(b, *self.grid, self.raft, c // self.raft).permute(order)
        shape = rows.shape
        out = mlp(rows.reshape(*shape[:3], shape[3] * shape[4])).view(shape)
        return out.permute(back).reshape(b, n, c)

    def forward(self, x: Tensor) -> Tensor:
        v = self._mix(self.norm_v(x), self.vertical, _VERTICAL, _VERTICAL_BACK)
        h = self._mix(self.norm_h(x + v), self.horizontal, _HORIZONTAL, _HORIZONTAL_BACK)
        return v + h
