"""Shared convolution helper for spatial mixers (not a mixer family)."""

from __future__ import annotations

from torch import Tensor, nn

from mixnas.layers import conv2d_fp32


def live_extent(kernel: int, side: int) -> int:
    """Taps of an odd, centred ``kernel`` that can reach a grid of ``side``: offsets of ``side`` or more
    only ever read padding, so at most ``2 * side - 1`` of them are live."""
    return min(kernel, 2 * side - 1)


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C, C, kernel, padding=kernel // 2, groups=C, bias=False)`` on a known ``grid``, run with
    only the taps that can see the grid.

    Cropping the kernel to the live taps computes exactly the same output (the cropped taps multiply
    zeros) and gives them zero gradient, as the full kernel does; it spares small grids (deep stages at
    32x32 inputs) slow convolutions that are mostly padding, and a kernel cropped to 1x1 runs as a
    per-channel scale (PyTorch's CPU convolution takes a per-sample slow path for it). Same parameters,
    initialisation and state-dict keys as the plain layer; kernel sides must be odd. Under autocast it runs
    in fp32 (:func:`mixnas.layers.conv2d_fp32`).
    """

    def __init__(self, channels: int, kernel_size: int | tuple[int, int], grid: tuple[int, int]):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        super().__init__(channels, channels, (kh, kw), padding=(kh // 2, kw // 2), groups=channels, bias=False)
        eh, ew = live_extent(kh, grid[0]), live_extent(kw, grid[1])
        self.live = (slice((kh - eh) // 2, (kh + eh) // 2), slice((kw - ew) // 2, (kw + ew) // 2))
        self.live_padding = (eh // 2, ew // 2)
        self.cropped = (eh, ew) != (kh, kw)
        self.scale_only = eh == ew == 1

    def forward(self, img: Tensor) -> Tensor:
        weight = self.weight[:, :, self.live[0], self.live[1]] if self.cropped else self.weight
        if self.scale_only:
            return img * weight.view(1, -1, 1, 1)
        return conv2d_fp32(img, weight, 1, self.live_padding, self.groups)  # bf16 is slower (see there)
