"""Sparse-MLP's mixture-of-experts mixers: MoE token mixing (with re-represent layers) and MoE channel mixing.

Paper: Lou, Xue, Zheng and You, "Sparse-MLP: A Fully-MLP Architecture with Conditional Computation" (arXiv
2109.02008, later "Cross-token Modeling with Conditional Computation"). Sparse blocks replace some of
MLP-Mixer's blocks: ``MoE_S`` mixes along the patch axis with token-MLP experts (each channel's row of patch
values is routed), ``MoE_C`` along the channel axis with channel-MLP experts (each patch is routed), and
two re-represent layers around ``MoE_S`` re-shape the ``S x C`` representation to ``S' x C'`` (fewer, longer
rows: cheaper routing, more rows per expert) and back. No official code was found; this follows the paper
and the routing of V-MoE / Switch Transformer, which it builds on.

Routing (both roles), on ``R`` rows of length ``d`` (``R`` counts the whole batch)::

    p = softmax(router(row))                      router: Linear(d, E) without bias
    each row picks its top_k experts; its gate for an expert is that expert's probability p_e
    capacity = ceil(capacity_factor * top_k * R / E) rows per expert; assignments are served in order of
    choice (every first choice before any second) and then of rows; an assignment past its expert's
    capacity is dropped (the row then gets nothing from that expert; the residual carries it)
    out(row) = sum over its kept assignments of p_e * expert_e(row)     experts: Linear -> GELU -> Linear
    aux_loss = 0.01 * E * sum_e f_e * P_e          f_e: share of rows whose first choice is e,
                                                   P_e: mean of p_e over rows (Switch Transformer's loss)

The routing is deterministic (``topk`` and the serving order break ties by index), so the same weights and
input give the same output. The load-balancing loss is published as the module's ``aux_loss`` while
training (``None`` in eval mode); :func:`mixnas.train.train` adds every module's ``aux_loss`` to the
training loss. Its weight, 0.01 (Switch / V-MoE), is fixed: it is training, not architecture.

Experts run on fixed-capacity buffers (``E x capacity`` rows, empty slots zero), as V-MoE does on
accelerators, with one batched matrix product per layer. MACs therefore count what runs: the router on every
row plus ``E x capacity`` expert rows (``capacity_factor * top_k * R``, rounded up per expert), whatever the
routing; fvcore traces the batched products (``baddbmm``) and counts the gathers and scatters as copies
(the routing's bookkeeping adds one comparison-sum over ``top_k * R x E`` booleans, counted as a ``sum``).

Token mixer (``MoE_S``): with ``rerepresent`` (default), ``Linear(C, C')`` on channels and ``Linear(N, S')``
on tokens before the MoE and ``Linear(S', N)``, ``Linear(C', C)`` after it, with ``C' = C / rerep_ratio``
and ``S' = N * rerep_ratio`` (rounded; the paper's re-represent layers, which keep ``S' C'`` near ``S C``);
the ``B x C'`` rows of length ``S'`` are routed to token-MLP experts ``S' -> expert_ratio S' -> S'``.
Without it, the ``B x C`` rows of length ``N`` are routed. Channel mixer (``MoE_C``): the ``B x N`` tokens
are routed to channel-MLP experts ``C -> expert_ratio C -> C``.

Deviations from the paper (no code to compare against): the expert counts, ``top_k`` and capacity factors
of the paper's models are not reproduced (the named presets in :mod:`mixnas.zoo.sparse_mlp` are mixnas'
own); the paper's later "importance-score routing" (v3) is not implemented, routing is V-MoE's top-k with
capacity; the re-represent layers' exact sizes are the ``rerep_ratio`` knob. Initialisation: router and
experts truncated normal std 0.02, zero biases (mixnas' default for linear layers).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.registry import MixerContext, Param, register_mixer

AUX_LOSS_WEIGHT = 0.01


def _top_k_fits(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if params["top_k"] > params["num_experts"]:
        return [("top_k", f"top_k={params['top_k']} exceeds num_experts={params['num_experts']}")]
    return []


def _positions(choice: Tensor, experts: int) -> Tensor:
    """Each assignment's position within its expert's queue (how many earlier assignments chose the same
    expert). A stable sort by expert does it in ``O(n log n)``; under ``torch.onnx.export``, whose legacy
    exporter cannot export a stable sort, a running count over a one-hot matrix (``O(n * experts)``) gives the
    same positions in standard operators. Both count zero MACs (integer bookkeeping)."""
    if torch.onnx.is_in_onnx_export():
        onehot = (choice.unsqueeze(1) == torch.arange(experts, device=choice.device)).to(choice.dtype)
        return (onehot.cumsum(dim=0) * onehot).sum(dim=1) - 1
    order = torch.sort(choice, stable=True).indices  # grouped by expert, serving order kept within
    start = (choice.unsqueeze(1) < torch.arange(experts, device=choice.device)).sum(dim=0)  # each group's start
    ranked = torch.arange(choice.shape[0], device=choice.device) - start[choice[order]]
    return torch.empty_like(choice).index_put_((order,), ranked)


class SparseMoE(nn.Module):
    """Top-k routed MLP experts with a capacity, on rows of length ``dim``; publishes ``aux_loss``."""

    def __init__(self, dim: int, hidden: int, num_experts: int, top_k: int, capacity_factor: float):
        super().__init__()
        self.num_experts, self.top_k, self.capacity_factor = num_experts, top_k, capacity_factor
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_experts, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(num_experts, 1, dim))
        for w in (self.w1, self.w2):
            nn.init.trunc_normal_(w, std=0.02)
        self.aux_loss: Tensor | None = None

    def capacity(self, rows: int) -> int:
        return max(1, math.ceil(self.capacity_factor * self.top_k * rows / self.num_experts))

    def forward(self, x: Tensor) -> Tensor:  # (R, dim) -> (R, dim)
        r, d = x.shape
        e, cap = self.num_experts, self.capacity(r)
        probs = self.router(x).float().softmax(dim=-1)  # (R, E)
        gates, experts = probs.topk(self.top_k, dim=-1)  # (R, k)
        # assignments in serving order (choice rank first, then row) and their position within their expert
        choice = experts.t().reshape(-1)  # (k*R,)
        position = _positions(choice, e)
        # shapes stay fixed (meta tensors, tracing): a dropped assignment goes to a spare slot e * cap that no
        # expert reads and that returns zero
        slots = torch.where(position < cap, choice * cap + position, torch.full_like(position, e * cap))
        rows = torch.arange(self.top_k * r, device=x.device) % r
        buffer = x.new_zeros(e * cap + 1, d).index_add(0, slots, x.index_select(0, rows))
        hidden = F.gelu(torch.baddbmm(self.b1, buffer[:-1].view(e, cap, d), self.w1))
        out_buf = torch.cat([torch.baddbmm(self.b2, hidden, self.w2).view(e * cap, d), x.new_zeros(1, d)])
        weighted = out_buf.index_select(0, slots) * gates.t().reshape(-1, 1).to(x.dtype)
        out = x.new_zeros(r, d).index_add(0, rows, weighted)
        if self.training:
            first = (experts[:, :1] == torch.arange(e, device=x.device)).float().mean(dim=0)
            self.aux_loss = AUX_LOSS_WEIGHT * e * (first * probs.mean(dim=0)).sum()
        else:
            self.aux_loss = None
        return out


def _common_params(expert_ratio: float) -> list[Param]:
    return [
        Param("num_experts", int, 4, min=1, doc="experts E"),
        Param("top_k", int, 1, min=1, doc="experts each row is sent to (at most num_experts)"),
        Param("capacity_factor", float, 1.0, min=0.01,
              doc="expert capacity = ceil(capacity_factor * top_k * rows / E); assignments beyond it are dropped"),
        Param("expert_ratio", float, expert_ratio, min=0.01, doc="hidden width of each expert / its row length"),
    ]


@register_mixer("token", "moe", params=[
    *_common_params(2.0),
    Param("rerepresent", bool, True, doc="Sparse-MLP's re-represent layers around the token MoE"),
    Param("rerep_ratio", float, 2.0, min=0.01, doc="re-represented shape: C' = C / ratio channels, S' = N * ratio "
                                                    "tokens (with rerepresent)"),
], rules=[_top_k_fits])
class TokenMoE(nn.Module):
    """Sparse-MLP MoE_S: channel rows routed to token-MLP experts, inside re-represent layers."""

    def __init__(self, ctx: MixerContext, num_experts: int, top_k: int, capacity_factor: float, expert_ratio: float,
                 rerepresent: bool, rerep_ratio: float):
        super().__init__()
        n, c = ctx.num_tokens, ctx.dim
        if rerepresent:
            c2, n2 = max(1, round(c / rerep_ratio)), max(1, round(n * rerep_ratio))
            self.in_channels, self.in_tokens = nn.Linear(c, c2), nn.Linear(n, n2)
            self.out_tokens, self.out_channels = nn.Linear(n2, n), nn.Linear(c2, c)
        else:
            n2 = n
            self.in_channels = self.in_tokens = self.out_tokens = self.out_channels = None
        self.moe = SparseMoE(n2, max(1, round(expert_ratio * n2)), num_experts, top_k, capacity_factor)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        if self.in_channels is not None:
            x = self.in_channels(x)  # (B, N, C')
            x = self.in_tokens(x.transpose(1, 2))  # (B, C', S')
        else:
            x = x.transpose(1, 2)
        c2, n2 = x.shape[1], x.shape[2]
        y = self.moe(x.reshape(b * c2, n2)).view(b, c2, n2)
        if self.in_channels is not None:
            return self.out_channels(self.out_tokens(y).transpose(1, 2))
        return y.transpose(1, 2)


@register_mixer("channel", "moe", params=_common_params(4.0), rules=[_top_k_fits])
class ChannelMoE(nn.Module):
    """Sparse-MLP MoE_C: every token routed to channel-MLP experts."""

    def __init__(self, ctx: MixerContext, num_experts: int, top_k: int, capacity_factor: float, expert_ratio: float):
        super().__init__()
        self.moe = SparseMoE(ctx.dim, max(1, round(expert_ratio * ctx.dim)), num_experts, top_k, capacity_factor)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return self.moe(x.reshape(b * n, c)).view(b, n, c)
