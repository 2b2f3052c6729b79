"""gMLP's token mixer: a gated MLP whose gate is a Spatial Gating Unit (SGU).

Paper: Liu et al., "Pay Attention to MLPs", NeurIPS 2021 (arXiv 2105.08050). No official code; timm's
``mlp_mixer.py`` (``SpatialGatingBlock``, ``SpatialGatingUnit``, ``GatedMlp`` in ``layers/mlp.py``) is the
PyTorch reference whose exact parameter counts the named models match (``gmlp_s16_224`` = 19,422,656).

On ``N`` tokens of width ``C``, with ``D = hidden_dim`` (even; official ``6C``)::

    u, v = split(GELU(Linear(C, D) (x)))            two halves of D/2 channels
    v = Linear(N, N) (LayerNorm(D/2) (v))           along the token axis (the SGU's spatial projection)
    out = Linear(D/2, C) (u * v)

The block is a single residual branch ``x + gmlp(LayerNorm(x))``: use it with the ``none`` channel mixer,
which drops the block's channel branch and its norm. With another channel mixer it is a hybrid (gated
token MLP, then a channel MLP), which the search space may explore.

Initialisation follows timm: xavier-uniform ``fc1`` / ``fc2`` with N(0, 1e-6) biases, the spatial
projection N(0, 1e-6) with unit bias (so the gate starts at one and the unit at a plain MLP).

Deviations from timm: none in structure or parameter count (the SGU's LayerNorm has PyTorch's default eps
1e-5, as in timm). ``gate_norm: false`` drops that LayerNorm (an ablation knob, not in timm).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def _hidden_even(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if params["hidden_dim"] % 2:
        return [("hidden_dim", f"the gate splits the hidden width in two halves: {params['hidden_dim']} is odd")]
    return []


@register_mixer("token", "gmlp", params=[
    Param("hidden_dim", int, lambda ctx: 6 * ctx.dim, min=2,
          doc="hidden width of the gated MLP, split into value and gate halves (gMLP: 6 x dim); even"),
    Param("gate_norm", bool, True, doc="LayerNorm on the gate half before the spatial projection (gMLP: true)"),
], rules=[_hidden_even])
class SpatialGatingMLP(nn.Module):
    """gMLP: channel expansion, a spatial gating unit across tokens, channel projection."""

    def __init__(self, ctx: MixerContext, hidden_dim: int, gate_norm: bool):
        super().__init__()
        half = hidden_dim // 2
        self.fc1 = nn.Linear(ctx.dim, hidden_dim)
        self.gate_norm = nn.LayerNorm(half) if gate_norm else nn.Identity()
        self.proj = nn.Linear(ctx.num_tokens, ctx.num_tokens)
        self.fc2 = nn.Linear(half, ctx.dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)
        nn.init.normal_(self.proj.weight, std=1e-6)
        nn.init.ones_(self.proj.bias)
        for fc in (self.fc1, self.fc2, self.proj):
            fc._mixnas_custom_init = True

    def forward(self, x: Tensor) -> Tensor:
        u, v = F.gelu(self.fc1(x)).chunk(2, dim=-1)
        v = F.linear(self.gate_norm(v).transpose(1, 2), self.proj.weight, self.proj.bias).transpose(1, 2)
        return self.fc2(u * v)
