"""ViT multi-head self-attention, the reference token mixer.

Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021. Official code: google-research/vision_transformer; PyTorch port in timm
(``timm/models/vision_transformer.py``), whose parameter counts the named models match exactly.

A fused ``qkv`` projection, ``scaled_dot_product_attention`` (flash / memory-efficient kernels where the
device has them) and an output projection. No deviation from timm's ``Attention`` (no qk-norm, no dropout).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


def _heads_divide(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if ctx.dim % params["num_heads"]:
        return [("num_heads", f"width {ctx.dim} is not divisible by num_heads={params['num_heads']}")]
    return []


@register_mixer("token", "attention", params=[
    Param("num_heads", int, lambda ctx: max(1, ctx.dim // 64), min=1,
          doc="attention heads; the width must be divisible by it (default: head dim 64)"),
    Param("qkv_bias", bool, True, doc="bias on the fused query/key/value projection"),
], rules=[_heads_divide])
class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (class token included)."""

    def __init__(self, ctx: MixerContext, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = ctx.dim // num_heads
        self.qkv = nn.Linear(ctx.dim, 3 * ctx.dim, bias=qkv_bias)
        self.proj = nn.Linear(ctx.dim, ctx.dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
