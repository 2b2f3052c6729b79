"""ResMLP's token mixer: one linear layer across tokens, shared by all channels.

Paper: Touvron et al., "ResMLP: Feedforward networks for image classification with data-efficient
training", IEEE TPAMI 2022 (arXiv 2105.03404). Official code: facebookresearch/deit (``resmlp_models.py``);
PyTorch reference in timm (``timm/models/mlp_mixer.py``: ``ResBlock``, ``Affine``), whose exact parameter
counts the named models match.

The token mixer is ``Linear(N, N)`` with bias applied along the token axis (the official ``attn`` /
timm's ``linear_tokens``); the rest of the ResMLP block is the backbone's: ``affine`` norms (per-channel
``alpha * x + beta``, :class:`mixnas.layers.Affine`), per-channel layer scales on both residual branches
(``StageSpec.layer_scale``: 0.1 for ResMLP-12, 1e-5 for 24, 1e-6 for 36) and the plain ``mlp`` channel
mixer. Initialisation follows timm: xavier-uniform weight, zero bias.

Deviations from timm: none in structure or parameter count. The linear map runs as one GEMM over a
contiguous ``(B, C, N)`` copy (as :mod:`mixnas.mixers.mixer` does).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("token", "resmlp", params=[
    Param("bias", bool, True, doc="bias of the token-mixing linear layer (official: true)"),
])
class LinearTokenMixer(nn.Module):
    """ResMLP token mixing: a single linear layer across the tokens, shared by all channels."""

    def __init__(self, ctx: MixerContext, bias: bool):
        super().__init__()
        self.linear = nn.Linear(ctx.num_tokens, ctx.num_tokens, bias=bias)
        self.linear._mixnas_custom_init = True
        nn.init.xavier_uniform_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.transpose(1, 2).contiguous(), self.linear.weight, self.linear.bias).transpose(1, 2)
