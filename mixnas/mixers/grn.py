"""Strip-MLP's channel mixer: a ConvNeXt-V2 inverted bottleneck with Global Response Normalization.

Paper: Cao et al., "Strip-MLP: Efficient Token Interaction for Vision MLP", ICCV 2023 (Channel Mixing
Block, after ConvNeXt's inverted bottleneck and ConvNeXt V2's GRN: Woo et al., CVPR 2023).
Official code: github.com/Med-Process/Strip_MLP, ``models/strip_mlp.py`` (``ChannelMixing``, ``GRN``).

Per block, on a ``C``-channel ``H x W`` grid::

    x = depthwise k x k conv (no bias) (x)        [dw_kernel; official 7]
    x = LayerNorm(C) (x)                           (eps 1e-5, PyTorch's default, as official)
    x = GELU(Linear(C, D) (x))                     [channel_hidden_dim D; official 3C]
    x = x + gamma * (x * N(x)) + beta              GRN: N(x) = ||x||_2 over the grid / its mean over D
    x = Linear(D, C) (x)

Deviations from the official code, none of which changes the function or the parameter count:
``D`` is a parameter (the official ``GRN(3 * in_channel)`` hard-codes the ratio its ``alpha`` also sets);
``dw_kernel = 0`` drops the depthwise conv; GRN is evaluated as ``beta + x * (1 + gamma * N(x))`` (one
fused op; same value up to rounding) with the grid norm taken as a square root of a sum of squares (much
faster on CPU than ``torch.norm`` over a non-innermost axis; an all-zero channel still gets norm 0 and
gradient 0); the depthwise conv skips taps that only ever read padding (7x7 on a 2x2 grid runs as 3x3:
same output, fewer MACs); tokens stay channels-last (no permutes); the linear layers keep PyTorch's
default initialisation, as in the official code, and GRN's gamma and beta start at zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.layers import image_to_tokens, tokens_to_image
from mixnas.mixers._conv import DepthwiseConv2d
from mixnas.registry import MixerContext, Param, register_mixer


def _dw_kernel(params, ctx: MixerContext) -> list[tuple[str, str]]:
    k = params["dw_kernel"]
    if k and k % 2 == 0:
        return [("dw_kernel", f"must be odd so the convolution keeps the grid; allowed: 0 (none), 1, 3, 5, "
                              f"7, ..., found {k}")]
    return []


class _GRNTraining(torch.autograd.Function):
    """GRN's forward and a hand-written backward, in fp32 whatever the input's precision.

    Autograd's own backward of the expression in :meth:`GlobalResponseNorm.forward` takes about ten passes
    over the ``(B, N, D)`` activation, several of them broadcasting or mixing bf16 with fp32 (TensorIterator's
    slow casting loops); this one takes four (cast, sum of ``dy * x``, ``dy.sum``, one ``addcmul``). Used only
    when a gradient is wanted, so tracing (fvcore, under ``no_grad``) sees the plain operators.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        s = torch.mul(xf, xf).sum(dim=1, keepdim=True)
        live = s > 0
        g = torch.where(live, s, torch.ones_like(s)).sqrt() * live
        denom = g.mean(dim=-1, keepdim=True) + eps
        n = g / denom
        ctx.save_for_backward(xf, gamma, g, n, denom, live)
        ctx.in_dtype = x.dtype
        return torch.addcmul(beta, xf, 1.0 + gamma * n).to(torch.result_type(beta, x))

    @staticmethod
    def backward(ctx, dy: Tensor):
        xf, gamma, g, n, denom, live = ctx.saved_tensors
        dyf = dy.to(xf.dtype)
        t = torch.mul(dyf, xf).sum(dim=1, keepdim=True)            # (B, 1, D): sum over tokens of dy * x
        d_beta = dyf.sum(dim=(0, 1))
        d_gamma = (t * n).sum(dim=(0, 1))
        dn = t * gamma
        dg = (dn - (dn * n).mean(dim=-1, keepdim=True)) / denom     # through n = g / (mean(g) + eps)
        coef = torch.where(live, dg / torch.where(live, g, torch.ones_like(g)), torch.zeros_like(g))  # 2x ds
        dx = torch.addcmul(dyf * (1.0 + gamma * n), xf, coef)
        return dx.to(ctx.in_dtype), d_gamma, d_beta, None


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN over the tokens of ``(B, N, D)``: ``x + gamma * x * N(x) + beta``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            return _GRNTraining.apply(x, self.gamma, self.beta, self.eps)
        # ||x||_2 over the tokens. torch.linalg.vector_norm over a non-innermost axis is ~10x slower on CPU;
        # the sum of squares is fast, and sqrt only ever sees positive values so an all-zero channel (a dead
        # unit) gets norm 0 and gradient 0 (as vector_norm gives it) instead of sqrt'(0) = inf -> NaN.
        s = x.square().sum(dim=1, keepdim=True)
        live = s > 0
        g = torch.where(live, s, torch.ones_like(s)).sqrt() * live
        n = g / (g.mean(dim=-1, keepdim=True) + self.eps)
        return torch.addcmul(self.beta, x, 1.0 + self.gamma * n)


@register_mixer("channel", "grn", params=[
    Param("channel_hidden_dim", int, lambda ctx: 3 * ctx.dim, min=1,
          doc="width of the inverted bottleneck (official: alpha x dim with alpha = 3)"),
    Param("dw_kernel", int, 7, min=0, doc="depthwise conv kernel before the MLP; odd, 0 for none (official 7)"),
], rules=[_dw_kernel], spatial=True)
class GRNChannelMixer(nn.Module):
    """Depthwise conv, LayerNorm, Linear-GELU-GRN-Linear inverted bottleneck."""

    def __init__(self, ctx: MixerContext, channel_hidden_dim: int, dw_kernel: int):
        super().__init__()
        c = ctx.dim
        self.grid = ctx.grid
        self.dwconv = DepthwiseConv2d(c, dw_kernel, ctx.grid) if dw_kernel else None
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, channel_hidden_dim)
        self.grn = GlobalResponseNorm(channel_hidden_dim)
        self.fc2 = nn.Linear(channel_hidden_dim, c)
        self.fc1._mixnas_custom_init = self.fc2._mixnas_custom_init = True

    def forward(self, x: Tensor) -> Tensor:
        if self.dwconv is not None:
            x = image_to_tokens(self.dwconv(tokens_to_image(x, self.grid)))
        return self.fc2(self.grn(F.gelu(self.fc1(self.norm(x)))))
