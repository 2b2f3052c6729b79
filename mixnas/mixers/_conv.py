"""Shared convolution helper for spatial mixers (not a mixer family)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def live_conv2d(img: Tensor, weight: Tensor, groups: int) -> Tensor:
    """A stride-1 'same' convolution with odd kernels that skips the taps that only ever read padding.

    On an ``H x W`` grid an offset of ``H`` rows or more never lands on the grid, so a ``k``-tall kernel
    has at most ``2H - 1`` live rows (likewise columns). Cropping the kernel to them computes exactly the
    same output (the cropped taps multiply zeros) and gives them zero gradient, as the full kernel would;
    it spares small grids (deep stages at 32x32 inputs) slow convolutions that are mostly padding.
    ``weight`` is ``(C_out, C_in / groups, kh, kw)``.
    """
    kh, kw = weight.shape[-2:]
    eh, ew = min(kh, 2 * img.shape[-2] - 1), min(kw, 2 * img.shape[-1] - 1)
    if (eh, ew) != (kh, kw):
        top, left = (kh - eh) // 2, (kw - ew) // 2
        weight = weight[:, :, top:top + eh, left:left + ew]
    if eh == ew == 1 and groups == img.shape[1] == weight.shape[0]:
        # A 1x1 depthwise kernel (e.g. any kernel on a 1x1 grid) is a per-channel scale; PyTorch's CPU
        # convolution takes a per-sample slow path for it (~30 ms on a 4 x 640 x 1 x 1 input).
        return img * weight.view(1, -1, 1, 1)
    return F.conv2d(img, weight, None, 1, (eh // 2, ew // 2), 1, groups)


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C, C, kernel, padding=kernel // 2, groups=C, bias=False)`` run by :func:`live_conv2d`.

    Same parameters, initialisation and state-dict keys as the plain layer; kernel sides must be odd.
    """

    def __init__(self, channels: int, kernel_size: int | tuple[int, int]):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        super().__init__(channels, channels, (kh, kw), padding=(kh // 2, kw // 2), groups=channels, bias=False)

    def forward(self, img: Tensor) -> Tensor:
        return live_conv2d(img, self.weight, self.groups)
