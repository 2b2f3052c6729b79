"""The plain channel-mixing MLP shared by MLP-Mixer, ViT and most vision MLPs.

``Linear(C, channel_hidden_dim) -> GELU -> Linear(channel_hidden_dim, C)`` applied to every token
(timm's ``Mlp``; no dropout).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("channel", "mlp", params=[
    Param("channel_hidden_dim", int, lambda ctx: 4 * ctx.dim, min=1,
          doc="hidden width of the channel MLP (D_C in MLP-Mixer; 4 x dim by default)"),
])
class ChannelMLP(nn.Module):
    """Per-token two-layer MLP across channels."""

    def __init__(self, ctx: MixerContext, channel_hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(ctx.dim, channel_hidden_dim)
        self.fc2 = nn.Linear(channel_hidden_dim, ctx.dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


@register_mixer("channel", "none", params=[])
class NoChannelMixer(nn.Module):
    """No channel mixing: the block drops its channel branch, norm included (gMLP's single-branch block).

    :class:`mixnas.network.Block` never calls this module; it exists so that ``none`` is a declared family
    (YAML, search spaces, the contract tests), and as a module it is the identity.
    """

    def __init__(self, ctx: MixerContext):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x
