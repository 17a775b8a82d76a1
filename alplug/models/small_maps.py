"""Convolutions over 1x1 feature maps, computed as the 1x1 convolutions they are.

A torchvision ResNet fed small images (alplug's digits at 32 px, or 16 px with ``--image-size 16``) reaches
1x1 feature maps in its last stages. A 3x3 convolution with padding 1 over a 1x1 map multiplies only its
centre tap with the input: the other eight always see padding. PyTorch's CPU kernels compute all nine anyway,
and their weight gradient for 512 channels over 1x1 maps runs more than ten times below the machine's matrix
speed (docs/performance.md, "Small feature maps"). Neither PyTorch, torchvision nor timm special-cases it, so
alplug does, in the forward pass only: the same parameters and state dict, the same result up to float
rounding, and autograd gives the eight unused taps the zero gradient they have anyway.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def _only_tap(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int | None:
    """The one kernel tap that meets a 1-pixel input along a dimension with one output, else ``None``."""
    if (1 + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1 != 1 or size != 1:
        return None
    if padding % dilation or padding // dilation >= kernel:
        return None  # no tap meets the pixel: leave the rare case to PyTorch
    return padding // dilation


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes a 1x1-output convolution of a 1x1 map with the single tap it uses."""

    def forward(self, x):
        if self.padding_mode != "zeros" or isinstance(self.padding, str) or x.dim() != 4:
            return super().forward(x)
        taps = [_only_tap(x.shape[2 + d], self.kernel_size[d], self.stride[d], self.padding[d], self.dilation[d])
                for d in (0, 1)]
        if None in taps:
            return super().forward(x)
        i, j = taps
        return F.conv2d(x, self.weight[:, :, i:i + 1, j:j + 1], self.bias, 1, 0, 1, self.groups)


def use_small_map_convolutions(module: nn.Module) -> int:
    """Make every plain ``nn.Conv2d`` in ``module`` a ``SmallMapConv2d`` in place; returns how many changed.

    Subclasses of ``nn.Conv2d`` (timm's padded convolutions, for one) keep their own forward.
    """
    changed = 0
    for layer in module.modules():
        if type(layer) is nn.Conv2d:
            layer.__class__ = SmallMapConv2d
            changed += 1
    return changed
