"""MLP-Mixer's token-mixing MLP.

Paper: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021.
Official code: google-research/vision_transformer (``vit_jax/models_mixer.py``); PyTorch port in timm
(``timm/models/mlp_mixer.py``), whose parameter counts the named models match exactly.

One MLP shared by all channels mixes the ``N`` tokens: ``N -> token_hidden_dim -> N`` with GELU.
Deviation (none in the maths): the two token-axis linear maps run as ``W @ x`` batched matmuls on the
``(B, N, C)`` tokens instead of transposing to ``(B, C, N)`` and back, which saves two copies per block.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("token", "mixer", params=[
    Param("token_hidden_dim", int, lambda ctx: max(1, ctx.dim // 2), min=1,
          doc="hidden width of the token-mixing MLP (D_S in the paper; timm: 0.5 x dim)"),
])
class TokenMixingMLP(nn.Module):
    """MLP-Mixer token mixing: a two-layer MLP across tokens, shared over channels."""

    def __init__(self, ctx: MixerContext, token_hidden_dim: int):
        super().__init__()
        n = ctx.num_tokens
        self.fc1 = nn.Linear(n, token_hidden_dim)
        self.fc2 = nn.Linear(token_hidden_dim, n)
        for fc in (self.fc1, self.fc2):
            fc._mixnas_custom_init = True
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, N, C). fc1.weight: (D, N) -> (B, D, C); bias broadcasts over channels.
        h = torch.matmul(self.fc1.weight, x) + self.fc1.bias[:, None]
        h = F.gelu(h)
        return torch.matmul(self.fc2.weight, h) + self.fc2.bias[:, None]
