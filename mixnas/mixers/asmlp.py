"""AS-MLP's token mixer: the axial shift, in a horizontal and a vertical branch.

Paper: Lian, Yu, Sun and Gao, "AS-MLP: An Axial Shifted MLP Architecture for Vision", ICLR 2022.
Official code: github.com/svip-lab/AS-MLP, ``models/as_mlp.py`` (``AxialShift``) and ``models/shift_cuda.py``
(``Shift``, a CuPy kernel, with ``torch_shift`` as its pure-PyTorch reference). With default parameters this
module has the official parameters one for one (1x1 convolutions held as ``nn.Linear``) and computes the
same function.

On a ``C``-channel ``H x W`` grid::

    x  = GELU(GN(conv1(x)))                      conv: 1x1 (a linear map over channels), GN: GroupNorm(1, C)
    lr = GELU(conv2_1(shift(x, along W)))        horizontal branch
    td = GELU(conv2_2(shift(x, along H)))        vertical branch
    out = conv3(GN(lr + td))

``shift(x, axis)`` splits the channels into ``s = shift_size`` groups of ``ceil(C / s)`` channels (the last
one possibly smaller, as ``torch.chunk`` and the CUDA kernel do) and moves group ``g`` by
``(g - s // 2) * dilation`` positions along the axis, filling with zeros (no wrap-around): group 0 moves
``s // 2`` positions towards index 0, the middle group stays. The shift is one registered operator,
``mixnas::axial_shift`` (its gradient is the opposite shift), listed in
:data:`mixnas.complexity.ZERO_COST_OPS`: it moves memory and costs no multiply-add, which fvcore now
counts explicitly instead of tracing its copies.

Knobs: ``shift_size`` (official 5; the paper ablates 1-9), ``dilation`` (the paper's dilated shift,
Table 4; the official code has dilation 1 only), ``branches`` (``both`` is official; ``horizontal`` /
``vertical`` keep one branch and drop the other's projection), ``bias`` (the official ``as_bias``).

Deviations from the official code, none of which changes the function or the parameter count with
default knobs:

* tokens stay channels-last, so the 1x1 convolutions run as ``nn.Linear`` and GroupNorm(1, C) runs on the
  ``(B, C, N)`` view of the tokens (:class:`mixnas.layers.TokenGroupNorm`, same statistics and affine);
* the shift is a CPU/GPU PyTorch operator instead of the official CUDA-only CuPy kernel (same values); under
  ``torch.onnx.export`` the same shift is spelled in standard operators (:func:`axial_shift_traceable`);
* ``shift_size`` 1 is accepted and means no shift (the official ``Shift`` module returns its input for 1,
  though its kernel asserts ``>= 3``);
* initialisation is PyTorch's default for the projections, as in the official code (its ``_init_weights``
  only touches ``nn.Linear`` and ``LayerNorm`` modules, which the mixer does not contain).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mixnas.layers import TokenGroupNorm
from mixnas.registry import MixerContext, Param, register_mixer

BRANCHES = ("both", "horizontal", "vertical")


# -- the shift operator -----------------------------------------------------------------------------------


@torch.library.custom_op("mixnas::axial_shift", mutates_args=())
def axial_shift(x: Tensor, dim: int, shift_size: int, dilation: int) -> Tensor:
    """Zero-filled grouped shift of a channels-last tensor along ``dim``: channel group ``g`` (of
    ``shift_size`` groups of ``ceil(C / shift_size)`` channels) moves by ``(g - shift_size // 2) * dilation``
    positions, ``out[i] = x[i - move]``. A negative ``dilation`` gives the adjoint (the gradient)."""
    out = torch.zeros_like(x)
    channels, size = x.shape[-1], x.shape[dim]
    width = -(-channels // shift_size)
    for g, start in enumerate(range(0, channels, width)):
        move = (g - shift_size // 2) * dilation
        kept = size - abs(move)
        if kept <= 0:
            continue
        span = min(width, channels - start)
        src = x.narrow(dim, max(-move, 0), kept).narrow(-1, start, span)
        out.narrow(dim, max(move, 0), kept).narrow(-1, start, span).copy_(src)
    return out


@axial_shift.register_fake
def _axial_shift_fake(x: Tensor, dim: int, shift_size: int, dilation: int) -> Tensor:
    return torch.empty_like(x)


def _axial_shift_setup(ctx, inputs, output) -> None:
    ctx.dim, ctx.shift_size, ctx.dilation = inputs[1], inputs[2], inputs[3]


def _axial_shift_backward(ctx, grad: Tensor):
    return axial_shift(grad, ctx.dim, ctx.shift_size, -ctx.dilation), None, None, None


axial_shift.register_autograd(_axial_shift_backward, setup_context=_axial_shift_setup)


def axial_shift_traceable(x: Tensor, dim: int, shift_size: int, dilation: int) -> Tensor:
    """:func:`axial_shift` spelled in standard operators (split, narrow, zeros, cat), for the ONNX exporter,
    which knows no symbolic for the registered operator. Same values; the operator stays the default because
    it is one node to fvcore (no copies to account for) and writes the output once."""
    size = x.shape[dim]
    width = -(-x.shape[-1] // shift_size)
    parts = []
    for g, part in enumerate(torch.split(x, width, dim=-1)):
        move = (g - shift_size // 2) * dilation
        if abs(move) >= size:
            parts.append(torch.zeros_like(part))
        elif move == 0:
            parts.append(part)
        else:
            fill = torch.zeros_like(part.narrow(dim, 0, abs(move)))
            kept = part.narrow(dim, max(-move, 0), size - abs(move))
            parts.append(torch.cat([fill, kept] if move > 0 else [kept, fill], dim=dim))
    return torch.cat(parts, dim=-1)


# -- validity rules ---------------------------------------------------------------------------------------


def _odd_shift(params, ctx: MixerContext) -> list[tuple[str, str]]:
    if params["shift_size"] % 2 == 0:
        return [("shift_size", f"must be odd so the middle channel group stays in place; allowed: 1, 3, 5, "
                               f"7, ..., found {params['shift_size']}")]
    if params["shift_size"] > ctx.dim:
        return [("shift_size", f"{params['shift_size']} channel groups cannot be made of width {ctx.dim}; "
                               f"allowed: odd values up to {ctx.dim}")]
    return []


# -- module -----------------------------------------------------------------------------------------------


def _projection(dim: int, bias: bool) -> nn.Linear:
    """An official 1x1 convolution: PyTorch's default initialisation (the backbone leaves it alone)."""
    layer = nn.Linear(dim, dim, bias=bias)
    layer._mixnas_custom_init = True
    return layer


@register_mixer("token", "asmlp", params=[
    Param("shift_size", int, 5, min=1,
          doc="channel groups, shifted by -(s//2) .. s//2 positions along each axis (official 5); odd"),
    Param("dilation", int, 1, min=1,
          doc="positions per shift step: group g moves (g - s//2) * dilation (paper's dilated shift; official 1)"),
    Param("branches", str, "both", choices=BRANCHES,
          doc="both axial branches, summed (official), or only the horizontal / vertical one"),
    Param("bias", bool, True, doc="biases of the 1x1 projections (official as_bias)"),
], rules=[_odd_shift], spatial=True)
class AxialShiftMixer(nn.Module):
    """AS-MLP token mixing: projection, axial shifts along rows and columns, projections, fusion."""

    def __init__(self, ctx: MixerContext, shift_size: int, dilation: int, branches: str, bias: bool):
        super().__init__()
        c = ctx.dim
        self.grid, self.shift_size, self.dilation = ctx.grid, shift_size, dilation
        self.conv1 = _projection(c, bias)
        self.norm1 = TokenGroupNorm(c)
        self.conv2_1 = _projection(c, bias) if branches in ("both", "horizontal") else None
        self.conv2_2 = _projection(c, bias) if branches in ("both", "vertical") else None
        self.norm2 = TokenGroupNorm(c)
        self.conv3 = _projection(c, bias)

    def _branch(self, proj: nn.Linear, img: Tensor, dim: int) -> Tensor:
        if self.shift_size > 1:
            shift = axial_shift_traceable if torch.onnx.is_in_onnx_export() else axial_shift
            img = shift(img, dim, self.shift_size, self.dilation)
        return F.gelu(proj(img))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        img = F.gelu(self.norm1(self.conv1(x))).view(b, self.grid[0], self.grid[1], c)
        out = None
        if self.conv2_1 is not None:
            out = self._branch(self.conv2_1, img, 2)  # left-right: along W
        if self.conv2_2 is not None:
            td = self._branch(self.conv2_2, img, 1)  # top-down: along H
            out = td if out is None else out + td
        return self.conv3(self.norm2(out.reshape(b, n, c)))

    def extra_repr(self) -> str:
        return f"shift_size={self.shift_size}, dilation={self.dilation}"
