"""MLP-Mixer's token-mixing MLP.

Paper: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021.
Official code: google-research/vision_transformer (``vit_jax/models_mixer.py``); PyTorch port in timm
(``timm/models/mlp_mixer.py``), whose parameter counts the named models match exactly.

One MLP shared by all channels mixes the ``N`` tokens: ``N -> token_hidden_dim -> N`` with GELU.
Implementation: the normalised tokens are transposed once into a contiguous ``(B, C, N)`` copy, then both
linear maps run as ``F.linear`` (one large GEMM each, bias fused) and the result is returned as a transposed
view. Measured on 2 CPU cores (``bench/train_throughput.py``), this trains 1.2-1.3x faster in fp32 and
1.6x faster under bf16 autocast than broadcasting ``W @ x`` over the batch (B small GEMMs whose bias add
promotes bf16 to fp32), which this module did before.
"""

from __future__ import annotations

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
        # x: (B, N, C) -> contiguous (B, C, N): each linear map is then a single (B*C, N) x (N, D) GEMM.
        h = F.gelu(F.linear(x.transpose(1, 2).contiguous(), self.fc1.weight, self.fc1.bias))
        return F.linear(h, self.fc2.weight, self.fc2.bias).transpose(1, 2)
